package bench

import "testing"

func TestField(t *testing.T) {
	f := []byte(`{"type":"message","message_id":"m1","room_id":"r","seq":42,"sender_id":"s","client_msg_id":"c-1","body":"123 say \"hi\"","sent_at":"t"}`)
	for key, want := range map[string]string{"type": "message", "seq": "42", "client_msg_id": "c-1", "body": `123 say \"hi\"`, "missing": ""} {
		if got := string(field(f, key)); got != want {
			t.Errorf("field %q = %q, want %q", key, got, want)
		}
	}
}

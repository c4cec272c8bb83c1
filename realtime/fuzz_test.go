package realtime

import (
	"testing"
	"unicode/utf8"

	"github.com/gofiber/contrib/websocket"

	"github.com/chatflow/chatflow"
)

// FuzzDecodeFrame: whatever a client sends, the decoder never panics, a
// refused frame gets a stable code and a short ref, and an accepted frame
// is valid UTF-8 JSON without NUL.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"send","room_id":"r","client_msg_id":"c","body":"hi"}`,
		`{"type":"sync","rooms":{"a":1}}`, `{"type":"read","room_id":"x","seq":"1"}`,
		`{"type":"send","body":"a\u0000b"}`, `{"type":"send","body":"\ud800"}`, "\xff\xfe", `[]`, `{`, ``,
	} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, text bool) {
		mt := websocket.TextMessage
		if !text {
			mt = websocket.BinaryMessage
		}
		fr, bad := decodeFrame(mt, data)
		if bad != nil {
			switch bad.Code {
			case chatflow.ECodeBadFrame, chatflow.ECodeTooLarge, chatflow.ECodeValidation:
			default:
				t.Fatalf("refused with code %q", bad.Code)
			}
			if len(bad.Ref) > chatflow.MaxClientMsgID {
				t.Fatalf("ref of %d bytes echoed back", len(bad.Ref))
			}
			return
		}
		if !text || !utf8.Valid(data) || len(data) > maxFrame {
			t.Fatalf("accepted a frame it must refuse: %q", data)
		}
		if err := chatflow.ValidJSONText(data); err != nil {
			t.Fatalf("accepted %q: %v", data, err)
		}
		_ = refOf(fr)
	})
}

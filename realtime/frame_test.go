package realtime

import (
	"bytes"
	"testing"
)

// TestAppendTextFrame checks the hand-built frames against RFC 6455 headers
// for each of the three length encodings.
func TestAppendTextFrame(t *testing.T) {
	for _, n := range []int{0, 5, 125, 126, 65535, 65536, 200000} {
		p := bytes.Repeat([]byte{'x'}, n)
		f := appendTextFrame(nil, p)
		if f[0] != 0x81 {
			t.Fatalf("n=%d: first byte %#x, want FIN|text", n, f[0])
		}
		var hdr, got int
		switch {
		case n < 126:
			hdr, got = 2, int(f[1])
		case n <= 0xffff:
			hdr, got = 4, int(f[2])<<8|int(f[3])
			if f[1] != 126 {
				t.Fatalf("n=%d: length marker %d, want 126", n, f[1])
			}
		default:
			hdr = 10
			for _, b := range f[2:10] {
				got = got<<8 | int(b)
			}
			if f[1] != 127 {
				t.Fatalf("n=%d: length marker %d, want 127", n, f[1])
			}
		}
		if got != n || len(f) != hdr+n || !bytes.Equal(f[hdr:], p) {
			t.Fatalf("n=%d: decoded length %d, frame %d bytes", n, got, len(f))
		}
	}
}

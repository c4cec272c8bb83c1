package codec

import (
	"net/http"
	"slices"

	"go.temporal.io/sdk/converter"
)

// Handler is the codec endpoint the Temporal Web UI calls to show
// compressed payloads (batch bodies) as the JSON they hold: POST
// …/decode and …/encode with Temporal's remote codec protocol (the SDK's
// own handler). Browsers may call it from origins only; a preflight from
// another origin gets no CORS headers, so the browser refuses to send the
// payloads. It decodes whatever it is sent, so it belongs on an internal
// listener (METRICS_ADDR), like the Web UI itself: both show message bodies.
func Handler(origins []string) http.Handler {
	h := converter.NewPayloadCodecHTTPHandler(New(0)) // encode is the identity: nothing is compressed for the UI
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && slices.Contains(origins, o) {
			w.Header().Set("Access-Control-Allow-Origin", o)
			w.Header().Set("Access-Control-Allow-Headers", "Content-Type, X-Namespace")
			w.Header().Set("Access-Control-Allow-Methods", "POST, OPTIONS")
			w.Header().Add("Vary", "Origin")
		}
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}

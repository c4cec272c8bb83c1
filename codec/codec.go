// Package codec is the Temporal payload codec: payloads above a size are
// compressed with zlib before they leave the process, and decoded on the way
// in. Group-commit batches carry message bodies (they are what keeps an acked
// message when Redis loses its tail; RELIABILITY.md, redis-oscrash), so each
// is up to 1 MiB of JSON that the Temporal server would otherwise receive,
// store in history and send back to the worker uncompressed in its database.
// Small payloads (saga inputs, results) stay plain JSON so that the Web UI
// shows them as they are.
package codec

import (
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

// Large is a converter.PayloadCodec that zlib-compresses payloads of at
// least Over bytes (0: none) and decodes every zlib payload, whoever wrote
// it, so a process that compresses nothing still reads what others did.
type Large struct {
	Over int
	zlib converter.PayloadCodec
}

// New returns the codec compressing payloads of at least over bytes.
func New(over int) *Large {
	return &Large{Over: over, zlib: converter.NewZlibCodec(converter.ZlibCodecOptions{})}
}

// Encode compresses the payloads of at least Over bytes that get smaller.
func (l *Large) Encode(ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
	if l.Over <= 0 {
		return ps, nil
	}
	out := make([]*commonpb.Payload, len(ps))
	for i, p := range ps {
		if len(p.GetData()) < l.Over {
			out[i] = p
			continue
		}
		enc, err := l.zlib.Encode([]*commonpb.Payload{p})
		if err != nil {
			return ps, err
		}
		out[i] = enc[0]
	}
	return out, nil
}

// Decode restores compressed payloads and passes the others through.
func (l *Large) Decode(ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
	return l.zlib.Decode(ps)
}

// DataConverter is Temporal's default JSON data converter behind the codec.
func DataConverter(over int) converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), New(over))
}

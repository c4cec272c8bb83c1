package api

import (
	"bytes"
	"context"
	"image"
	"image/jpeg"
	"io"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
)

// Thumbnails of image attachments: a JPEG of at most thumbSide pixels a
// side, stored next to the original as <key>.thumb.jpg and served by
// GET /rooms/{id}/files/{upload_id}?variant=thumb. Only images whose header
// says at most maxThumbPixels are decoded, so a small file claiming huge
// dimensions (a decompression bomb) is never expanded.
const (
	thumbSide      = 256
	maxThumbPixels = 16 << 20
)

func thumbKey(up db.ChatUpload) string { return chatflow.ThumbnailKey(up.ObjectKey) }

// makeThumb stores a thumbnail of up (width×height from its header) and
// reports whether it did; any failure leaves the file without one.
func (s *Server) makeThumb(ctx context.Context, store ObjectStore, up db.ChatUpload, width, height int) bool {
	if width <= 0 || height <= 0 || width*height > maxThumbPixels {
		return false
	}
	r, err := store.Open(ctx, up.ObjectKey)
	if err != nil {
		return false
	}
	img, _, err := image.Decode(io.LimitReader(r, store.MaxUploadBytes()))
	_ = r.Close()
	if err != nil {
		return false
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, scaleDown(img, thumbSide), &jpeg.Options{Quality: 80}); err != nil {
		return false
	}
	if err := store.Put(ctx, thumbKey(up), "image/jpeg", buf.Bytes()); err != nil {
		s.Log.Warn("thumbnail not stored", "upload_id", up.ID, "error", err)
		return false
	}
	return true
}

// scaleDown shrinks img to fit side×side (never enlarges), averaging each
// target pixel's source box: plain standard library, good enough for a
// preview.
func scaleDown(img image.Image, side int) image.Image {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	tw, th := w, h
	if w > side || h > side {
		if w >= h {
			tw, th = side, max(1, h*side/w)
		} else {
			tw, th = max(1, w*side/h), side
		}
	}
	return resize(img, b, tw, th)
}

// resize scales the src part of img to tw×th: each target pixel averages
// its source box (one source pixel when enlarging).
func resize(img image.Image, b image.Rectangle, tw, th int) *image.RGBA {
	w, h := b.Dx(), b.Dy()
	out := image.NewRGBA(image.Rect(0, 0, tw, th))
	for y := 0; y < th; y++ {
		y0, y1 := b.Min.Y+y*h/th, b.Min.Y+max((y+1)*h/th, y*h/th+1)
		for x := 0; x < tw; x++ {
			x0, x1 := b.Min.X+x*w/tw, b.Min.X+max((x+1)*w/tw, x*w/tw+1)
			var r, g, bl, a, n uint64
			for sy := y0; sy < y1; sy++ {
				for sx := x0; sx < x1; sx++ {
					cr, cg, cb, ca := img.At(sx, sy).RGBA()
					r, g, bl, a, n = r+uint64(cr), g+uint64(cg), bl+uint64(cb), a+uint64(ca), n+1
				}
			}
			i := out.PixOffset(x, y)
			out.Pix[i], out.Pix[i+1], out.Pix[i+2], out.Pix[i+3] = uint8(r/n>>8), uint8(g/n>>8), uint8(bl/n>>8), uint8(a/n>>8)
		}
	}
	return out
}

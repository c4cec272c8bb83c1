package chatflow

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// KindFile is an attachment posted into a room; the body is a FileMessage
// in JSON. The bytes are in the object store: members fetch them through
// GET /api/v1/rooms/{room_id}/files/{upload_id}.
const KindFile = "file"

// ThumbnailKey is where the api stores the JPEG preview of an image
// attachment, next to its original.
func ThumbnailKey(objectKey string) string { return objectKey + ".thumb.jpg" }

// AvatarPictureKey is where the api stores the square JPEG it makes from an
// avatar upload's original; the profile names this key once it is set.
func AvatarPictureKey(originalKey string) string { return originalKey + ".jpg" }

// MaxFileNameChars bounds an attachment's name, in characters.
const MaxFileNameChars = 200

// FileMessage is the body of a KindFile message.
type FileMessage struct {
	UploadID    string `json:"upload_id"`
	Name        string `json:"name"`
	Size        int64  `json:"size"`
	ContentType string `json:"content_type"`
	Width       int    `json:"width,omitempty"`
	Height      int    `json:"height,omitempty"`
	// Thumbnail: a small JPEG preview is served with ?variant=thumb.
	Thumbnail bool `json:"thumbnail,omitempty"`
}

// ValidFileName checks an attachment's name: 1–200 characters of one line
// of valid UTF-8, not only dots (it becomes a download's file name).
func ValidFileName(s string) error {
	if err := ValidText("name", s, false); err != nil {
		return err
	}
	if s == "" || utf8.RuneCountInString(s) > MaxFileNameChars || strings.Trim(s, ".") == "" {
		return Errorf(ECodeValidation, "name must be 1-%d characters and not only dots", MaxFileNameChars)
	}
	return nil
}

var contentTypeRE = regexp.MustCompile(`^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$`)

// NormalizeContentType checks an attachment's media type (type/subtype, no
// parameters, at most 129 bytes) and returns it in lower case.
func NormalizeContentType(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if !contentTypeRE.MatchString(s) {
		return "", Errorf(ECodeValidation, "content_type must be a media type such as image/png (type/subtype, no parameters)")
	}
	return s, nil
}

// InlineImage reports whether a media type is an image browsers may show
// inline from the store: raster formats only (SVG can carry script).
func InlineImage(ct string) bool {
	switch ct {
	case "image/png", "image/jpeg", "image/gif", "image/webp":
		return true
	}
	return false
}

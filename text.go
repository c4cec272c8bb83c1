package chatflow

import (
	"unicode/utf8"
)

// Client text is checked twice, because encoding/json silently repairs what
// it cannot decode: invalid UTF-8 and unpaired UTF-16 surrogate escapes
// ("\ud800") both become U+FFFD, so a check of the decoded string alone can
// never see them.
//
//  1. ValidJSONText checks the raw bytes of a JSON request body or WebSocket
//     frame before it is decoded.
//  2. ValidText checks each decoded text field (the validators below call it).
//
// Both answer validation_failed (422), never an internal error: a body that
// Postgres cannot store (U+0000) must be refused at the door, not fail a
// persistence workflow over and over.

// ValidJSONText checks the raw bytes of a JSON document (an HTTP request body
// or a WebSocket frame) for text that encoding/json would silently rewrite or
// that no field may hold:
//
//   - the bytes must be valid UTF-8;
//   - every \uD800–\uDBFF escape in a string must be followed directly by a
//     \uDC00–\uDFFF escape (a UTF-16 surrogate pair), and no \uDC00–\uDFFF
//     escape may stand alone;
//   - no string may contain the escape \u0000 (Postgres text cannot hold
//     U+0000, so it is refused in every field, passwords included).
//
// Other control characters are legal JSON and are left to ValidText per field
// (a message body may hold "\n"). Malformed JSON is not reported here: the
// decoder that runs next refuses it. The error is a validation_failed domain
// error whose detail names the byte offset.
func ValidJSONText(raw []byte) error {
	if !utf8.Valid(raw) {
		return Errorf(ECodeValidation, "request is not valid UTF-8 (byte %d)", invalidUTF8At(raw))
	}
	inString := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if !inString {
			inString = c == '"'
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			if i+1 >= len(raw) {
				return nil // truncated; the decoder refuses it
			}
			if raw[i+1] != 'u' {
				i++ // \" \\ \/ \b \f \n \r \t (or garbage the decoder refuses)
				continue
			}
			r, ok := hex4(raw, i+2)
			if !ok {
				i++
				continue
			}
			switch {
			case r == 0:
				return Errorf(ECodeValidation, "request contains the NUL character \\u0000 (byte %d)", i)
			case r >= 0xD800 && r <= 0xDBFF:
				if i+11 < len(raw) && raw[i+6] == '\\' && raw[i+7] == 'u' {
					if lo, ok := hex4(raw, i+8); ok && lo >= 0xDC00 && lo <= 0xDFFF {
						i += 11
						continue
					}
				}
				return Errorf(ECodeValidation, "request contains an unpaired UTF-16 surrogate escape (byte %d)", i)
			case r >= 0xDC00 && r <= 0xDFFF:
				return Errorf(ECodeValidation, "request contains an unpaired UTF-16 surrogate escape (byte %d)", i)
			}
			i += 5
		}
	}
	return nil
}

// hex4 parses the four hex digits at raw[i:i+4].
func hex4(raw []byte, i int) (rune, bool) {
	if i < 0 || i+4 > len(raw) {
		return 0, false
	}
	var r rune
	for _, c := range raw[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// invalidUTF8At returns the offset of the first byte of raw that does not
// start a valid UTF-8 sequence.
func invalidUTF8At(raw []byte) int {
	for i := 0; i < len(raw); {
		r, n := utf8.DecodeRune(raw[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(raw)
}

// ValidText checks one decoded client text field. It refuses invalid UTF-8
// (which includes UTF-8-encoded surrogates) and every control character of
// C0 (U+0000–U+001F) and DEL (U+007F), except that multi-line fields
// (allowNewlines) may hold "\n" and "\t". Carriage returns are refused
// everywhere: line breaks are "\n". Length limits are the caller's.
//
// field is the name the client knows the field by ("body", "display_name");
// it appears in the validation_failed detail.
func ValidText(field, s string, allowNewlines bool) error {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				if allowNewlines && (c == '\n' || c == '\t') {
					i++
					continue
				}
				return Errorf(ECodeValidation, "%s must not contain control characters (U+%04X at byte %d)", field, c, i)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			return Errorf(ECodeValidation, "%s must be valid UTF-8 (byte %d)", field, i)
		}
		i += n
	}
	return nil
}

package api

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/jpeg"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	_ "golang.org/x/image/webp" // image.Decode of uploaded WebP avatars

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/blob"
	"github.com/chatflow/chatflow/chat"
	"github.com/chatflow/chatflow/db"
)

// Avatars take the attachments' path through the object store: the client
// asks for an upload (POST /me/avatar/uploads), PUTs the original to the
// pre-signed URL (length and type signed), then sets it (PUT /me/avatar).
// Setting checks the stored object, decodes it and stores a square
// avatarSide×avatarSide JPEG at avatars/<user>/<upload>.jpg; the original is
// then deleted. Anyone signed in reads an avatar through GET
// /users/{id}/avatar, a redirect to a short-lived pre-signed GET.
const (
	avatarSide = 128
	// maxAvatarSide bounds each side of an original: its pixels are decoded.
	maxAvatarSide = 8192
)

// avatarURL is the path of a user's avatar with a cache buster that changes
// with every new picture, or "" when the user has none.
func avatarURL(user uuid.UUID, key *string, version int64) string {
	if key == nil {
		return ""
	}
	return "/api/v1/users/" + user.String() + "/avatar?v=" + strconv.FormatInt(version, 10)
}

func avatarContentType(raw string) (string, error) {
	ct := strings.ToLower(strings.TrimSpace(raw))
	switch ct {
	case "image/png", "image/jpeg", "image/gif", "image/webp":
		return ct, nil
	}
	return "", chatflow.Errorf(chatflow.ECodeValidation, "content_type must be image/png, image/jpeg, image/gif or image/webp")
}

func (s *Server) createAvatarUpload(c *fiber.Ctx) error {
	var req struct {
		Size        int64  `json:"size"`
		ContentType string `json:"content_type"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	store, err := s.objectStore()
	if err != nil {
		return err
	}
	ct, err := avatarContentType(req.ContentType)
	if err != nil {
		return err
	}
	if req.Size <= 0 {
		return chatflow.Errorf(chatflow.ECodeValidation, "size must be a positive number of bytes")
	}
	if max := s.Cfg.MaxAvatarBytes; req.Size > max {
		return chatflow.Errorf(chatflow.ECodeTooLarge, "size %d is over the avatar limit of %d bytes", req.Size, max)
	}
	ctx, me := c.UserContext(), userID(c)
	n, err := s.Queries.CountPendingAvatarUploads(ctx, db.CountPendingAvatarUploadsParams{UserID: me, Since: time.Now().Add(-uploadWindow)})
	if err != nil {
		return err
	}
	if n >= maxPendingUploads {
		return chatflow.Errorf(chatflow.ECodeRateLimited, "%d avatar uploads are waiting to be set; set one or wait", n)
	}
	id := uuid.New()
	up, err := s.Queries.InsertAvatarUpload(ctx, db.InsertAvatarUploadParams{
		ID: id, UserID: me, ObjectKey: "avatars/" + me.String() + "/" + id.String(), Size: req.Size, ContentType: ct,
	})
	if err != nil {
		return err
	}
	p, err := store.PresignPut(ctx, up.ObjectKey, up.Size, up.ContentType)
	if err != nil {
		return storeErr(err)
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{
		"upload_id": id.String(), "url": p.URL, "method": p.Method, "expires_at": p.Expires,
		"headers": fiber.Map{"Content-Type": ct}, "max_bytes": s.Cfg.MaxAvatarBytes,
	})
}

func (s *Server) setAvatar(c *fiber.Ctx) error {
	var req struct {
		UploadID string `json:"upload_id"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	store, err := s.objectStore()
	if err != nil {
		return err
	}
	id, err := uuid.Parse(req.UploadID)
	if err != nil {
		return chatflow.Errorf(chatflow.ECodeValidation, "upload_id must be a UUID")
	}
	ctx, me := c.UserContext(), userID(c)
	up, err := s.Queries.GetAvatarUpload(ctx, id)
	if isNotFound(err) || (err == nil && up.UserID != me) {
		return chatflow.Errorf(chatflow.ECodeNotFound, "avatar upload %s not found", id)
	}
	if err != nil {
		return err
	}
	if up.Status != "pending" {
		return avatarTaken(up)
	}
	jpg, err := s.avatarImage(ctx, store, up)
	if err != nil {
		// A concurrent set of the same upload may have taken it and deleted
		// the original under this one: that is a conflict, not a bad image.
		if cur, gerr := s.Queries.GetAvatarUpload(ctx, id); gerr == nil && cur.Status != "pending" {
			return avatarTaken(cur)
		}
		return err
	}
	key := chatflow.AvatarPictureKey(up.ObjectKey)
	if err := store.Put(ctx, key, "image/jpeg", jpg); err != nil {
		return storeErr(err)
	}
	var replaced *string
	err = pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		q := db.New(tx)
		n, err := q.UseAvatarUpload(ctx, up.ID)
		if err != nil {
			return err
		}
		if n == 0 {
			// A concurrent set took it (its picture is the same key: leave
			// it), or a sweep expired it (the sweep deletes that key later).
			cur, err := q.GetAvatarUpload(ctx, id)
			if err != nil {
				return err
			}
			return avatarTaken(cur)
		}
		row, err := q.SetAvatar(ctx, db.SetAvatarParams{UserID: me, AvatarKey: &key})
		if isNotFound(err) {
			return chatflow.Errorf(chatflow.ECodeNotFound, "profile not found")
		}
		replaced = row.ReplacedKey
		return err
	})
	if err != nil {
		return err
	}
	// The original and the previous picture are no longer served; a failure
	// here only leaves an unreachable object behind.
	s.deleteObject(ctx, store, up.ObjectKey)
	if replaced != nil && *replaced != key {
		s.deleteObject(ctx, store, *replaced)
	}
	v, err := s.meOf(ctx, me)
	if err != nil {
		return err
	}
	s.announceAvatar(ctx, me, v.DisplayName, v.StatusMessage, v.AvatarURL)
	return c.JSON(v)
}

// avatarTaken is the answer for an avatar upload that is no longer pending.
func avatarTaken(up db.ChatAvatarUpload) error {
	if up.Status == uploadExpired {
		return expiredErr(up.ID)
	}
	return chatflow.Errorf(chatflow.ECodeConflict, "avatar upload %s was already used", up.ID)
}

// avatarImage checks the uploaded original against what was declared and
// returns its square JPEG. A refused object is deleted with its upload, so
// the upload id is not found afterwards.
func (s *Server) avatarImage(ctx context.Context, store ObjectStore, up db.ChatAvatarUpload) ([]byte, error) {
	obj, err := store.Head(ctx, up.ObjectKey)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, chatflow.Errorf(chatflow.ECodeValidation, "nothing was uploaded for upload %s: PUT the bytes to its url first", up.ID)
	}
	if err != nil {
		return nil, storeErr(err)
	}
	var refused error
	var jpg []byte
	switch {
	case obj.Size > s.Cfg.MaxAvatarBytes:
		refused = chatflow.Errorf(chatflow.ECodeTooLarge, "the uploaded object has %d bytes, over the avatar limit of %d", obj.Size, s.Cfg.MaxAvatarBytes)
	case obj.Size != up.Size:
		refused = chatflow.Errorf(chatflow.ECodeValidation, "the uploaded object has %d bytes, not the %d declared", obj.Size, up.Size)
	case obj.ContentType != "" && !strings.EqualFold(obj.ContentType, up.ContentType):
		refused = chatflow.Errorf(chatflow.ECodeValidation, "the uploaded object is %s, not the %s declared", obj.ContentType, up.ContentType)
	default:
		jpg, err = s.squareJPEG(ctx, store, up.ObjectKey)
		var ce *chatflow.Error
		if errors.As(err, &ce) {
			refused = err
		} else if err != nil {
			return nil, storeErr(err)
		}
	}
	if refused != nil {
		if err := store.Delete(ctx, up.ObjectKey); err != nil {
			return nil, storeErr(err)
		}
		if err := s.Queries.DeleteAvatarUpload(ctx, up.ID); err != nil {
			return nil, err
		}
		return nil, refused
	}
	return jpg, nil
}

// squareJPEG decodes the image at key (its header first: a small file
// claiming huge dimensions is never expanded), crops the centred square
// and scales it to avatarSide, over white where it is transparent.
func (s *Server) squareJPEG(ctx context.Context, store ObjectStore, key string) ([]byte, error) {
	notImage := chatflow.Errorf(chatflow.ECodeValidation, "the uploaded object is not a PNG, JPEG, GIF or WebP image")
	r, err := store.Open(ctx, key)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, chatflow.Errorf(chatflow.ECodeValidation, "the uploaded object is gone")
	}
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(io.LimitReader(r, s.Cfg.MaxAvatarBytes+1))
	_ = r.Close()
	if err != nil {
		return nil, err
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(raw))
	if err != nil {
		return nil, notImage
	}
	if cfg.Width < 1 || cfg.Height < 1 || cfg.Width > maxAvatarSide || cfg.Height > maxAvatarSide || cfg.Width*cfg.Height > maxThumbPixels {
		return nil, chatflow.Errorf(chatflow.ECodeValidation, "the image is %d×%d; avatars may be at most %d pixels a side and %d pixels in all", cfg.Width, cfg.Height, maxAvatarSide, maxThumbPixels)
	}
	img, _, err := image.Decode(bytes.NewReader(raw))
	if err != nil {
		return nil, notImage
	}
	b := img.Bounds()
	side := min(b.Dx(), b.Dy())
	sq := image.Rect(0, 0, side, side).Add(b.Min).Add(image.Pt((b.Dx()-side)/2, (b.Dy()-side)/2))
	out := resize(img, sq, avatarSide, avatarSide)
	for i := 0; i < len(out.Pix); i += 4 { // premultiplied: add white where alpha is missing
		bg := 255 - out.Pix[i+3]
		out.Pix[i], out.Pix[i+1], out.Pix[i+2], out.Pix[i+3] = out.Pix[i]+bg, out.Pix[i+1]+bg, out.Pix[i+2]+bg, 255
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, out, &jpeg.Options{Quality: 85}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (s *Server) deleteAvatar(c *fiber.Ctx) error {
	ctx, me := c.UserContext(), userID(c)
	removed, err := s.Queries.ClearAvatar(ctx, me)
	if isNotFound(err) {
		return chatflow.Errorf(chatflow.ECodeNotFound, "profile not found")
	}
	if err != nil {
		return err
	}
	if removed != nil {
		if store, err := s.objectStore(); err == nil {
			s.deleteObject(ctx, store, *removed)
		}
		if p, err := s.Queries.GetProfile(ctx, me); err == nil {
			s.announceAvatar(ctx, me, p.DisplayName, p.StatusMessage, "")
		}
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// getAvatar redirects to a short-lived pre-signed GET of a user's avatar
// (?redirect=false answers {url, expires_at}, as file downloads do).
func (s *Server) getAvatar(c *fiber.Ctx) error {
	user, err := parseUUIDParam(c, "user_id")
	if err != nil {
		return err
	}
	store, err := s.objectStore()
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	p, err := s.Queries.GetProfile(ctx, user)
	if err == nil && p.AvatarKey == nil {
		return chatflow.Errorf(chatflow.ECodeNotFound, "user %s has no avatar", user)
	}
	if isNotFound(err) {
		return chatflow.Errorf(chatflow.ECodeNotFound, "user %s not found", user)
	}
	if err != nil {
		return err
	}
	u, err := store.PresignGet(ctx, *p.AvatarKey, "inline")
	if err != nil {
		return storeErr(err)
	}
	// The URL carries ?v=: a browser may reuse this redirect for a minute,
	// well within the pre-signed URL's life.
	c.Set(fiber.HeaderCacheControl, "private, max-age=60")
	return presignedAnswer(c, u)
}

func (s *Server) deleteObject(ctx context.Context, store ObjectStore, key string) {
	if err := store.Delete(ctx, key); err != nil {
		s.Log.Warn("avatar object not deleted", "key", key, "error", err)
	}
}

// announceAvatar tells the user's rooms of the new picture with the same
// profile frame a name change sends ("" avatar_url: none any more).
func (s *Server) announceAvatar(ctx context.Context, me uuid.UUID, name, status, url string) {
	rooms, err := s.Queries.UserRoomIDs(ctx, me)
	if err != nil {
		return
	}
	for _, r := range rooms {
		_ = s.chat.Publish(ctx, chat.RoomChannel(r.String()), map[string]any{
			"type": "profile", "room_id": r.String(), "user_id": me.String(), "display_name": name, "status_message": status, "avatar_url": url,
		})
	}
}

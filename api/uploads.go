package api

import (
	"context"
	"encoding/json"
	"errors"
	"image"
	_ "image/gif" // DecodeConfig of the inline image formats
	_ "image/jpeg"
	_ "image/png"
	"io"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/blob"
	"github.com/chatflow/chatflow/db"
)

// Attachments. The bytes never pass through the api: a member asks for an
// upload (POST /rooms/{id}/uploads) and gets a pre-signed PUT bound to the
// object's key, exact length and content type; after the PUT, attaching
// (POST /rooms/{id}/messages/files) checks the stored object with a HEAD
// (size within the limit and equal to the declared one) and posts a message
// of kind file; downloads are redirects to short-lived pre-signed GETs,
// given to current members only. Object keys are rooms/<room>/<upload>, so
// a URL signed for one room's object names no other.

// ObjectStore is what the api needs of the object store (blob.Store).
type ObjectStore interface {
	MaxUploadBytes() int64
	// Origin is where pre-signed URLs point (the web page's CSP allows it).
	Origin() string
	PresignPut(ctx context.Context, key string, size int64, contentType string) (blob.Presigned, error)
	PresignGet(ctx context.Context, key, disposition string) (blob.Presigned, error)
	Head(ctx context.Context, key string) (blob.Object, error)
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	Put(ctx context.Context, key, contentType string, body []byte) error
	Delete(ctx context.Context, key string) error
}

// Pending (never attached) uploads a user may hold within uploadWindow:
// each one reserves an object in the store.
const (
	maxPendingUploads = 20
	uploadWindow      = time.Hour
	maxImageSide      = 1 << 16
)

func (s *Server) objectStore() (ObjectStore, error) {
	if s.objects == nil {
		return nil, chatflow.Errorf(chatflow.ECodeUnavailable, "attachments are not configured on this node")
	}
	return s.objects, nil
}

// storeErr makes a failure to reach the store a 503 the client may retry.
func storeErr(err error) error {
	var ce *chatflow.Error
	if err == nil || errors.As(err, &ce) {
		return err
	}
	return &chatflow.Error{Code: chatflow.ECodeUnavailable, Detail: "the object store is unavailable; retry shortly", Err: err}
}

func (s *Server) createUpload(c *fiber.Ctx) error {
	room, err := parseUUIDParam(c, "room_id")
	if err != nil {
		return err
	}
	var req struct {
		Name        string `json:"name"`
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
	name := strings.TrimSpace(req.Name)
	if err := chatflow.ValidFileName(name); err != nil {
		return err
	}
	ct, err := chatflow.NormalizeContentType(req.ContentType)
	if err != nil {
		return err
	}
	if req.Size <= 0 {
		return chatflow.Errorf(chatflow.ECodeValidation, "size must be a positive number of bytes")
	}
	if max := store.MaxUploadBytes(); req.Size > max {
		return chatflow.Errorf(chatflow.ECodeTooLarge, "size %d is over the limit of %d bytes", req.Size, max)
	}
	ctx, me := c.UserContext(), userID(c)
	if _, err := s.membership(ctx, room, me); err != nil {
		return err
	}
	n, err := s.Queries.CountPendingUploads(ctx, db.CountPendingUploadsParams{UploaderID: me, Since: time.Now().Add(-uploadWindow)})
	if err != nil {
		return err
	}
	if n >= maxPendingUploads {
		return chatflow.Errorf(chatflow.ECodeRateLimited, "%d uploads are waiting to be attached; attach them or wait", n)
	}
	id := uuid.New()
	up, err := s.Queries.InsertUpload(ctx, db.InsertUploadParams{
		ID: id, RoomID: room, UploaderID: me, ObjectKey: "rooms/" + room.String() + "/" + id.String(),
		Name: name, Size: req.Size, ContentType: ct,
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
		"headers": fiber.Map{"Content-Type": ct}, "max_bytes": store.MaxUploadBytes(),
	})
}

// ownUpload returns the caller's upload id in room, or 404 for anything
// else (another room's, another user's, unknown).
func (s *Server) upload(ctx context.Context, room uuid.UUID, raw string) (db.ChatUpload, error) {
	id, err := uuid.Parse(raw)
	if err != nil {
		return db.ChatUpload{}, chatflow.Errorf(chatflow.ECodeValidation, "upload_id must be a UUID")
	}
	up, err := s.Queries.GetUpload(ctx, id)
	if isNotFound(err) || (err == nil && up.RoomID != room) {
		return up, chatflow.Errorf(chatflow.ECodeNotFound, "upload %s not found in room %s", id, room)
	}
	if err == nil && up.Status == uploadExpired {
		return up, expiredErr(up.ID)
	}
	return up, err
}

// uploadExpired is the status a sweep gives an upload (file or avatar) that
// waited too long to be attached or set; its objects are deleted later.
const uploadExpired = "expired"

func expiredErr(id uuid.UUID) error {
	return chatflow.Errorf(chatflow.ECodeNotFound, "upload %s has expired (it was never attached or set); upload the file again", id)
}

func (s *Server) attachFile(c *fiber.Ctx) error {
	room, err := parseUUIDParam(c, "room_id")
	if err != nil {
		return err
	}
	var req struct {
		UploadID    string `json:"upload_id"`
		ClientMsgID string `json:"client_msg_id"`
		Width       *int   `json:"width"`
		Height      *int   `json:"height"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	store, err := s.objectStore()
	if err != nil {
		return err
	}
	if err := chatflow.ValidClientMsgID(req.ClientMsgID); err != nil {
		return err
	}
	for _, d := range []*int{req.Width, req.Height} {
		if d != nil && (*d < 1 || *d > maxImageSide) {
			return chatflow.Errorf(chatflow.ECodeValidation, "width and height must be 1-%d", maxImageSide)
		}
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), restSendTimeout)
	defer cancel()
	me := userID(c)
	if err := s.limits.RESTSend(ctx, me); err != nil {
		return err
	}
	if _, err := s.membership(ctx, room, me); err != nil {
		return err
	}
	up, err := s.upload(ctx, room, req.UploadID)
	if err == nil && up.UploaderID != me {
		err = chatflow.Errorf(chatflow.ECodeNotFound, "upload %s not found in room %s", up.ID, room)
	}
	if err != nil {
		return err
	}
	if up.Status == "pending" {
		if up, err = s.verifyUpload(ctx, store, up, req.ClientMsgID, req.Width, req.Height); err != nil {
			return err
		}
	}
	// Attached: only a retry of the same message goes on (deduplicated by
	// the message core); another client_msg_id would post the file twice.
	if up.ClientMsgID == nil || *up.ClientMsgID != req.ClientMsgID {
		return chatflow.Errorf(chatflow.ECodeConflict, "upload %s is already attached to another message", up.ID)
	}
	fm := chatflow.FileMessage{UploadID: up.ID.String(), Name: up.Name, Size: up.Size, ContentType: up.ContentType}
	if up.Width != nil && up.Height != nil {
		fm.Width, fm.Height = int(*up.Width), int(*up.Height)
	}
	fm.Thumbnail = up.Thumbnail
	body, err := json.Marshal(fm)
	if err != nil {
		return err
	}
	a, err := s.chat.AcceptKind(ctx, me, room.String(), req.ClientMsgID, chatflow.KindFile, string(body))
	if err != nil {
		return err
	}
	if a.Dup {
		c.Set("Idempotent-Replayed", "true")
	}
	return c.Status(fiber.StatusCreated).JSON(a.Msg)
}

// verifyUpload checks the stored object against the upload and marks it
// attached to cmid. An object over the limit or of another size than
// declared is deleted with its upload.
func (s *Server) verifyUpload(ctx context.Context, store ObjectStore, up db.ChatUpload, cmid string, w, h *int) (db.ChatUpload, error) {
	obj, err := store.Head(ctx, up.ObjectKey)
	if errors.Is(err, blob.ErrNotFound) {
		return up, chatflow.Errorf(chatflow.ECodeValidation, "nothing was uploaded for upload %s: PUT the bytes to its url first", up.ID)
	}
	if err != nil {
		return up, storeErr(err)
	}
	var refused error
	switch {
	case obj.Size > store.MaxUploadBytes():
		refused = chatflow.Errorf(chatflow.ECodeTooLarge, "the uploaded object has %d bytes, over the limit of %d", obj.Size, store.MaxUploadBytes())
	case obj.Size != up.Size:
		refused = chatflow.Errorf(chatflow.ECodeValidation, "the uploaded object has %d bytes, not the %d declared", obj.Size, up.Size)
	case obj.ContentType != "" && !strings.EqualFold(obj.ContentType, up.ContentType):
		refused = chatflow.Errorf(chatflow.ECodeValidation, "the uploaded object is %s, not the %s declared", obj.ContentType, up.ContentType)
	}
	if refused != nil {
		if err := store.Delete(ctx, up.ObjectKey); err != nil {
			return up, storeErr(err)
		}
		if err := s.Queries.DeleteUpload(ctx, up.ID); err != nil {
			return up, err
		}
		return up, refused
	}
	width, height, real := s.imageSize(ctx, store, up, w, h)
	thumb := real && s.makeThumb(ctx, store, up, int(*width), int(*height))
	got, err := s.Queries.AttachUpload(ctx, db.AttachUploadParams{ID: up.ID, ClientMsgID: &cmid, Width: width, Height: height, Thumbnail: thumb})
	if isNotFound(err) { // a concurrent attach won, or a sweep expired it
		if got, err = s.Queries.GetUpload(ctx, up.ID); err == nil && got.Status == uploadExpired {
			return got, expiredErr(up.ID)
		}
	}
	return got, err
}

// imageSize reads an image's dimensions from its header (DecodeConfig reads
// no pixels, so a decompression bomb costs nothing); the client's values
// stand only for formats the standard library cannot read.
func (s *Server) imageSize(ctx context.Context, store ObjectStore, up db.ChatUpload, w, h *int) (_, _ *int32, fromHeader bool) {
	if !strings.HasPrefix(up.ContentType, "image/") {
		return nil, nil, false
	}
	if r, err := store.Open(ctx, up.ObjectKey); err == nil {
		cfg, _, derr := image.DecodeConfig(io.LimitReader(r, 1<<20))
		_ = r.Close()
		if derr == nil && cfg.Width > 0 && cfg.Height > 0 && cfg.Width <= maxImageSide && cfg.Height <= maxImageSide {
			cw, ch := int32(cfg.Width), int32(cfg.Height)
			return &cw, &ch, true
		}
	}
	if w == nil || h == nil {
		return nil, nil, false
	}
	cw, ch := int32(*w), int32(*h)
	return &cw, &ch, false
}

// downloadFile redirects a member to a short-lived pre-signed GET of an
// attached file, or of its thumbnail with ?variant=thumb (?redirect=false
// answers {url, expires_at} instead, for clients that cannot read a
// redirect's target, such as fetch in a page).
func (s *Server) downloadFile(c *fiber.Ctx) error {
	room, err := parseUUIDParam(c, "room_id")
	if err != nil {
		return err
	}
	store, err := s.objectStore()
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	if _, err := s.membership(ctx, room, userID(c)); err != nil {
		return err
	}
	up, err := s.upload(ctx, room, c.Params("upload_id"))
	if err == nil && up.Status != "attached" {
		err = chatflow.Errorf(chatflow.ECodeNotFound, "upload %s is not attached to a message", up.ID)
	}
	if err != nil {
		return err
	}
	kind := "attachment" // anything but a raster image downloads, never renders on the store's origin
	if chatflow.InlineImage(up.ContentType) {
		kind = "inline"
	}
	key := up.ObjectKey
	switch c.Query("variant") {
	case "":
	case "thumb":
		if !up.Thumbnail {
			return chatflow.Errorf(chatflow.ECodeNotFound, "upload %s has no thumbnail", up.ID)
		}
		key, kind = thumbKey(up), "inline"
	default:
		return chatflow.Errorf(chatflow.ECodeValidation, "variant must be thumb or absent")
	}
	p, err := store.PresignGet(ctx, key, blob.ContentDisposition(kind, up.Name))
	if err != nil {
		return storeErr(err)
	}
	c.Set(fiber.HeaderCacheControl, "private, no-store")
	return presignedAnswer(c, p)
}

// presignedAnswer redirects to a pre-signed GET, or with ?redirect=false
// answers {url, expires_at} for clients that cannot read a redirect's
// target (fetch in a page, an <img> that needs the token first).
func presignedAnswer(c *fiber.Ctx, p blob.Presigned) error {
	if c.Query("redirect") == "false" {
		return c.JSON(fiber.Map{"url": p.URL, "expires_at": p.Expires})
	}
	return c.Redirect(p.URL, fiber.StatusFound)
}

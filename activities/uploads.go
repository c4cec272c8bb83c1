package activities

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/db"
)

// SweepResult reports one sweep of unattached uploads.
type SweepResult struct {
	// Expired: uploads (files and avatars) this sweep marked expired.
	Expired int64 `json:"expired"`
	// Deleted: expired uploads whose objects and row this sweep removed.
	Deleted int `json:"deleted"`
	// Objects: object keys deleted (a missing object counts too: the
	// store answers a delete of one as done).
	Objects int `json:"objects"`
}

// sweepPage is how many uploads one statement of a sweep takes.
const sweepPage = 500

// expiredUpload is an expired upload of either table, with its delete.
type expiredUpload struct {
	id     uuid.UUID
	keys   []string
	forget func(context.Context, uuid.UUID) error
	kind   string // the metric's label: file or avatar
}

// SweepUploads removes uploads never attached to a message and avatar
// uploads never set. Each one pending for longer than UploadPendingTTL is
// first marked expired, which makes every later attach or set refuse it;
// those expired for longer than UploadSweepGrace lose their objects, then
// their row. The grace is for requests that read an upload as pending just
// before the mark: they may still store a thumbnail or an avatar's JPEG
// next to it (then fail), and the sweep deletes those keys too. One slower
// than the grace would leave its derived object behind. A delete the store
// refuses fails the activity with the row still expired, and the retry or
// the next sweep deletes it.
func (a *Activities) SweepUploads(ctx context.Context) (SweepResult, error) {
	var res SweepResult
	before := time.Now().Add(-a.Cfg.UploadPendingTTL)
	for _, expire := range []func() (int64, error){
		func() (int64, error) {
			return a.Queries.ExpirePendingUploads(ctx, db.ExpirePendingUploadsParams{Before: before, Max: sweepPage})
		},
		func() (int64, error) {
			return a.Queries.ExpirePendingAvatarUploads(ctx, db.ExpirePendingAvatarUploadsParams{Before: before, Max: sweepPage})
		},
	} {
		for {
			n, err := expire()
			if err != nil {
				return res, err
			}
			res.Expired += n
			activity.RecordHeartbeat(ctx, res)
			if n < sweepPage {
				break
			}
		}
	}
	if a.Objects == nil {
		return res, nil // nothing to delete objects with: the rows wait, expired
	}
	cutoff := time.Now().Add(-a.Cfg.UploadSweepGrace)
	for {
		page, more, err := a.expiredUploads(ctx, cutoff)
		if err != nil {
			return res, err
		}
		for _, u := range page {
			for _, key := range u.keys {
				if err := a.Objects.Delete(ctx, key); err != nil {
					return res, fmt.Errorf("delete object %s of expired upload %s: %w", key, u.id, err)
				}
				res.Objects++
			}
			if err := u.forget(ctx, u.id); err != nil {
				return res, err
			}
			res.Deleted++
			if a.Metrics != nil {
				a.Metrics.UploadsSwept.WithLabelValues(u.kind).Inc()
			}
		}
		activity.RecordHeartbeat(ctx, res)
		if !more {
			return res, nil
		}
	}
}

// expiredUploads lists a page of both tables' uploads expired before cutoff,
// each with the keys the api may have stored for it; more reports a full
// page of either.
func (a *Activities) expiredUploads(ctx context.Context, cutoff time.Time) (_ []expiredUpload, more bool, _ error) {
	files, err := a.Queries.ExpiredUploads(ctx, db.ExpiredUploadsParams{Before: cutoff, Max: sweepPage})
	if err != nil {
		return nil, false, err
	}
	pics, err := a.Queries.ExpiredAvatarUploads(ctx, db.ExpiredAvatarUploadsParams{Before: cutoff, Max: sweepPage})
	if err != nil {
		return nil, false, err
	}
	page := make([]expiredUpload, 0, len(files)+len(pics))
	for _, f := range files {
		// the api stores a thumbnail next to an image before it attaches
		page = append(page, expiredUpload{id: f.ID, keys: []string{f.ObjectKey, chatflow.ThumbnailKey(f.ObjectKey)}, forget: a.Queries.ForgetExpiredUpload, kind: "file"})
	}
	for _, p := range pics {
		// and an avatar's square JPEG before it marks the upload used
		page = append(page, expiredUpload{id: p.ID, keys: []string{p.ObjectKey, chatflow.AvatarPictureKey(p.ObjectKey)}, forget: a.Queries.ForgetExpiredAvatarUpload, kind: "avatar"})
	}
	return page, len(files) == sweepPage || len(pics) == sweepPage, nil
}

package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/roomlog"
)

// Accepted is the outcome of a send.
type Accepted struct {
	Msg   chatflow.Message
	Frame []byte
	// Dup is set when the client_msg_id was seen before: Msg is the original.
	Dup bool
}

// Accept validates one message, appends it to the room's log in Redis
// (sequenced, deduplicated, fanned out) and hands it to the group commit
// into Postgres. Once it returns without error the message is durable:
// Redis runs with appendfsync always, so the log survives a crash of Redis
// or of its machine, and the stream keeps the message until Postgres holds
// it (the batch workflow, or the reconciler if the batch is lost).
func (s *Service) Accept(ctx context.Context, sender uuid.UUID, roomID, cmid, body string) (Accepted, error) {
	return s.accept(ctx, sender, roomID, cmid, "", body, 0)
}

// AcceptReply is Accept for a text message that replies to the room's
// message at replyTo (0: none). A replyTo below 0, or not below the new
// message's seq, is refused with chatflow.ECodeInvalidReply before
// anything is sequenced; the bound is checked by the send script, so a
// reply costs no extra round trip. The target may be any seq the room has
// handed out, a deleted message included (clients show it as deleted).
func (s *Service) AcceptReply(ctx context.Context, sender uuid.UUID, roomID, cmid, body string, replyTo int64) (Accepted, error) {
	if replyTo < 0 {
		return Accepted{}, chatflow.Errorf(chatflow.ECodeInvalidReply, "reply_to must be a positive seq")
	}
	return s.accept(ctx, sender, roomID, cmid, "", body, replyTo)
}

// AcceptKind is Accept for a message of another kind than text (system
// events, transfers), posted by the server on sender's behalf; sender must
// be a member of the room like any sender. Clients cannot choose the kind.
func (s *Service) AcceptKind(ctx context.Context, sender uuid.UUID, roomID, cmid, kind, body string) (Accepted, error) {
	return s.accept(ctx, sender, roomID, cmid, kind, body, 0)
}

func (s *Service) accept(ctx context.Context, sender uuid.UUID, roomID, cmid, kind, body string, replyTo int64) (Accepted, error) {
	if kind == chatflow.KindText {
		kind = ""
	}
	room, err := uuid.Parse(roomID)
	if err != nil {
		return Accepted{}, chatflow.Errorf(chatflow.ECodeValidation, "room_id must be a UUID")
	}
	if err := chatflow.ValidClientMsgID(cmid); err != nil {
		return Accepted{}, err
	}
	if err := chatflow.ValidBody(body); err != nil {
		return Accepted{}, err
	}
	if s.redisFull.Load() {
		// refuse before sequencing: once a message has a seq it must be persisted
		return Accepted{}, chatflow.Errorf(chatflow.ECodeUnavailable, "message log is full; retry shortly with the same client_msg_id")
	}
	roomID = room.String()
	mid, err := uuid.NewV7()
	if err != nil {
		return Accepted{}, err
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	prefix, suffix := framePieces(mid.String(), roomID, sender.String(), cmid, kind, body, now, replyTo)
	call := roomlog.Append{
		Room: roomID, Sender: sender.String(), ClientMsgID: cmid, Prefix: prefix, Suffix: suffix,
		Channel: RoomChannel(roomID), MaxBacklog: s.cfg.MaxBacklog, DedupeTTL: dedupeTTL, Fence: s.cfg.SeqFence,
		ReplyTo: replyTo,
		Sharded: s.sharded,
	}
	for attempt := 0; attempt < 5; attempt++ {
		res, err := s.pipe.call(ctx, call)
		if err != nil {
			return Accepted{}, unavailable(err)
		}
		code, _ := res[0].(int64)
		switch code {
		case roomlog.NotMember:
			return Accepted{}, chatflow.Errorf(chatflow.ECodeNotMember, "you are not a member of room %s", roomID)
		case roomlog.MembersMissing:
			if err := s.cacheMembers(ctx, room); err != nil && !errors.Is(err, errMembersMoved) {
				return Accepted{}, err
			}
			continue
		case roomlog.SeqMissing:
			if err := s.cacheSeq(ctx, room); err != nil {
				return Accepted{}, err
			}
			continue
		case roomlog.BadReply:
			return Accepted{}, chatflow.Errorf(chatflow.ECodeInvalidReply, "reply_to %d is not a message of room %s", replyTo, roomID)
		case roomlog.BacklogFull:
			s.metrics.backlogRefused.Inc()
			return Accepted{}, chatflow.Errorf(chatflow.ECodeUnavailable, "room %s has too many messages waiting for storage; retry shortly with the same client_msg_id", roomID)
		case roomlog.Duplicate:
			return s.original(ctx, room, cmid, []byte(res[1].(string)))
		}
		// new: every field is already known here, skip decoding
		m := chatflow.Message{
			MessageID: mid.String(), RoomID: roomID, Seq: code, SenderID: sender.String(),
			ClientMsgID: cmid, Body: body, SentAt: now, Kind: kind, ReplyTo: replyTo,
		}
		s.metrics.messagesAccepted.Inc()
		s.batcher.add(m)
		return Accepted{Msg: m, Frame: []byte(res[1].(string))}, nil
	}
	return Accepted{}, chatflow.Errorf(chatflow.ECodeUnavailable, "room %s state is being rebuilt; retry with the same client_msg_id", roomID)
}

// original answers a duplicate send. The dedupe key holds only the
// original's seq (a few bytes per message instead of a copy); the original
// itself comes from the room's history.
func (s *Service) original(ctx context.Context, room uuid.UUID, cmid string, entry []byte) (Accepted, error) {
	if len(entry) > 0 && entry[0] == '{' { // an entry from before keys held seqs
		var m MessageFrame
		if err := json.Unmarshal(entry, &m); err != nil {
			return Accepted{}, fmt.Errorf("decode dedupe frame: %w", err)
		}
		return Accepted{Msg: m.Message, Frame: entry, Dup: true}, nil
	}
	orig, err := strconv.ParseInt(string(entry), 10, 64)
	if err != nil {
		return Accepted{}, fmt.Errorf("dedupe entry %q: %w", entry, err)
	}
	frames, err := s.FetchRange(ctx, room, orig, orig)
	if err != nil {
		return Accepted{}, err
	}
	if len(frames) != 1 {
		return Accepted{}, chatflow.Errorf(chatflow.ECodeUnavailable, "original of client_msg_id %q not readable yet; retry", cmid)
	}
	var m MessageFrame
	if err := json.Unmarshal(frames[0], &m); err != nil {
		return Accepted{}, fmt.Errorf("decode original frame: %w", err)
	}
	return Accepted{Msg: m.Message, Frame: frames[0], Dup: true}, nil
}

// unavailable answers a transport failure on the send path: the client may
// retry with the same client_msg_id and never gets a duplicate.
func unavailable(err error) error {
	return &chatflow.Error{Code: chatflow.ECodeUnavailable, Detail: "message store unreachable; retry with the same client_msg_id", Err: err}
}

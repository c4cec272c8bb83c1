package chatflow

import (
	"encoding/json"
	"strconv"
	"time"
)

// System events a room's sequence records (kind system), besides the
// deletion saga's member_left.
const (
	EventMemberJoined  = "member_joined"
	EventMemberLeft    = "member_left"
	EventMemberInvited = "member_invited"
	EventMemberRemoved = "member_removed"
	EventRoomRenamed   = "room_renamed"
)

// Room kinds.
const (
	RoomKindGroup = "group"
	RoomKindDM    = "dm"
)

// SystemEvent is the JSON body of a kind-system message about a room's
// membership or name.
type SystemEvent struct {
	Event    string `json:"event"`
	UserID   string `json:"user_id"`
	ByUserID string `json:"by_user_id,omitempty"`
	Name     string `json:"name,omitempty"`
}

// Body renders the event as a message body.
func (e SystemEvent) Body() string {
	b, _ := json.Marshal(e)
	return string(b)
}

// MembershipVersion renders a membership's joined_at compactly for the
// client_msg_ids of its system events: a user who leaves and rejoins gets
// a new membership, hence new ids, while a retry of the same change
// repeats the same id (and is deduplicated).
func MembershipVersion(joinedAt time.Time) string {
	return strconv.FormatInt(joinedAt.UnixMicro(), 36)
}

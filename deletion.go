package chatflow

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Account deletion: the saga's registered name, ids, steps and payloads,
// shared by the api (which starts it) and the workers (which run it).

// WorkflowDeleteUser is the registered name of the account deletion saga;
// QueryDeletionProgress the name of its query answering a DeletionProgress.
const (
	WorkflowDeleteUser    = "DeleteUser"
	QueryDeletionProgress = "progress"
)

// DeletionWorkflowPrefix starts the workflow id of every deletion saga; a
// search for it in the Temporal Web UI lists them all.
const DeletionWorkflowPrefix = "delete-user-"

// DeletionWorkflowID names the saga deleting userID as deletion deletionID:
// the user reads first, so all deletions of one user sort together.
func DeletionWorkflowID(userID, deletionID uuid.UUID) string {
	return DeletionWorkflowPrefix + userID.String() + "-" + deletionID.String()
}

// Deletion saga step names, in execution order (auth.deletions.step holds
// the one running or the one it stopped at).
const (
	DelStepRevokeSessions    = "auth.revoke_sessions"
	DelStepLeaveRooms        = "chat.leave_rooms"
	DelStepRemoveSocial      = "chat.remove_friendships"
	DelStepCloseAccount      = "customer.close_account"
	DelStepAnonymize         = "chat.anonymize_profile"
	DelStepEvent             = "kafka.user_deleted"
	DelStepDeleteCredentials = "auth.delete_credentials"
)

// DeletionSteps lists the deletion saga's steps in order.
var DeletionSteps = []string{
	DelStepRevokeSessions, DelStepLeaveRooms, DelStepRemoveSocial, DelStepCloseAccount,
	DelStepAnonymize, DelStepEvent, DelStepDeleteCredentials,
}

// DeletionInput is the deletion saga's input. It holds no secret: the api
// checked the password before it started the saga.
type DeletionInput struct {
	DeletionID  uuid.UUID `json:"deletion_id"`
	UserID      uuid.UUID `json:"user_id"`
	Username    string    `json:"username"`
	RequestedAt time.Time `json:"requested_at"`
}

// DeletionFailure is what the saga records when it ends failed.
type DeletionFailure struct {
	Input     DeletionInput `json:"input"`
	Step      string        `json:"step"`
	ErrorCode string        `json:"error_code"`
	Error     string        `json:"error"`
}

// DeletionProgress is the state of a deletion saga, as its query answers
// and as a failed saga's error details carry it.
type DeletionProgress struct {
	DeletionID string       `json:"deletion_id"`
	UserID     string       `json:"user_id"`
	Status     string       `json:"status"`
	Step       string       `json:"step"`
	Steps      []StepStatus `json:"steps"`
	ErrorCode  string       `json:"error_code,omitempty"`
	Error      string       `json:"error,omitempty"`
	// Reactivated is set when a failed deletion gave the account back.
	Reactivated bool `json:"reactivated,omitempty"`
}

// UserDeleted is the user.deleted event on TopicUserEvents, keyed by user
// id; EventID lets consumers drop the copies a retry may produce.
type UserDeleted struct {
	Type       string `json:"type"`
	EventID    string `json:"event_id"`
	UserID     string `json:"user_id"`
	DeletionID string `json:"deletion_id"`
	// RequestedAt is when the user asked (the same in every copy).
	RequestedAt time.Time `json:"requested_at"`
}

// EventUserDeleted is the type of a UserDeleted event.
const EventUserDeleted = "user.deleted"

// DeletedDisplayName is the display name every deleted user's profile
// shows; their messages stay under it.
const DeletedDisplayName = "deleted user"

// DeletedUsername is the username a deleted user's profile takes, freeing
// the real one: "deleted_" and the first 12 hex digits of the id.
// DeletedUsernameLong (the whole id) is the fallback should a user hold the
// short form: it is longer than any username a user may choose.
func DeletedUsername(id uuid.UUID) string {
	return "deleted_" + strings.ReplaceAll(id.String(), "-", "")[:12]
}

// DeletedUsernameLong: see DeletedUsername.
func DeletedUsernameLong(id uuid.UUID) string {
	return "deleted_" + strings.ReplaceAll(id.String(), "-", "")
}

// DeletionClientMsgID is the client_msg_id of the system event a deletion
// posts into each room the user leaves; it dedupes the event across retries.
func DeletionClientMsgID(deletionID uuid.UUID) string { return "deleted-" + deletionID.String() }

// MemberLeftBody is the body of the system message a deleted member leaves
// in each of their rooms.
func MemberLeftBody(userID uuid.UUID) string {
	b, _ := json.Marshal(map[string]string{"event": "member_left", "user_id": userID.String(), "reason": "account_deleted"})
	return string(b)
}

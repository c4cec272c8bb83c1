package chatflow

import (
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of the public contract.
const (
	MaxBodyChars     = 4000
	MaxHistoryLimit  = 200
	DefaultHistLimit = 50
	MaxUserSearch    = 50
	MaxRoomNameChars = 100
	MaxClientMsgID   = 64
)

// Message is one chat message as clients see it.
type Message struct {
	MessageID   string    `json:"message_id"`
	RoomID      string    `json:"room_id"`
	Seq         int64     `json:"seq"`
	SenderID    string    `json:"sender_id"`
	ClientMsgID string    `json:"client_msg_id"`
	Body        string    `json:"body"`
	SentAt      time.Time `json:"sent_at"`
}

// SignupRequest is what a client sends to create an account.
type SignupRequest struct {
	Username    string `json:"username"`
	Email       string `json:"email"`
	Password    string `json:"password"`
	DisplayName string `json:"display_name"`
}

var (
	usernameRE = regexp.MustCompile(`^[a-z0-9_]{3,32}$`)
	emailRE    = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
)

// Normalize trims and lower-cases the fields that are compared case-insensitively.
func (r *SignupRequest) Normalize() {
	r.Username = strings.TrimSpace(r.Username)
	r.Email = strings.ToLower(strings.TrimSpace(r.Email))
	r.DisplayName = strings.TrimSpace(r.DisplayName)
}

// Validate checks the request against the contract (username 3–32 of
// [a-z0-9_], password ≥ 8, a plausible email, display name 1–64).
func (r *SignupRequest) Validate() error {
	switch {
	case !ValidUsername(r.Username):
		return Errorf(ECodeValidation, "username must be 3-32 characters of a-z, 0-9 and _")
	case len(r.Email) > 254 || !emailRE.MatchString(r.Email):
		return Errorf(ECodeValidation, "email is not a valid address")
	case utf8.RuneCountInString(r.Password) < 8 || len(r.Password) > 72:
		// bcrypt ignores bytes past 72, so longer passwords would be silently truncated.
		return Errorf(ECodeValidation, "password must be 8-72 bytes long")
	}
	if r.DisplayName == "" {
		r.DisplayName = r.Username
	}
	return ValidDisplayName(r.DisplayName)
}

// ValidUsername reports whether s is an acceptable username.
func ValidUsername(s string) bool { return usernameRE.MatchString(s) }

// ValidDisplayName checks a display name: 1–64 characters of valid UTF-8.
func ValidDisplayName(s string) error {
	if !utf8.ValidString(s) || s == "" || utf8.RuneCountInString(s) > 64 {
		return Errorf(ECodeValidation, "display_name must be 1-64 characters of valid UTF-8")
	}
	return nil
}

// ValidBody checks a message body: 1–4000 characters of valid UTF-8.
func ValidBody(s string) error {
	if !utf8.ValidString(s) {
		return Errorf(ECodeValidation, "body must be valid UTF-8")
	}
	if s == "" {
		return Errorf(ECodeValidation, "body must not be empty")
	}
	if len(s) > MaxBodyChars*4 || utf8.RuneCountInString(s) > MaxBodyChars {
		return Errorf(ECodeValidation, "body must be at most %d characters", MaxBodyChars)
	}
	return nil
}

// ValidClientMsgID checks a client message id: 1–64 printable ASCII characters.
func ValidClientMsgID(s string) error {
	if s == "" || len(s) > MaxClientMsgID {
		return Errorf(ECodeValidation, "client_msg_id must be 1-%d characters", MaxClientMsgID)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return Errorf(ECodeValidation, "client_msg_id must be printable ASCII")
		}
	}
	return nil
}

// Signup saga step names, in execution order.
const (
	StepCredentials = "auth.create_credentials"
	StepProfile     = "chat.create_profile"
	StepAccount     = "customer.open_account"
	StepEvent       = "kafka.user_created"
	StepActivate    = "auth.activate"
)

// SignupSteps lists the saga's steps in order.
var SignupSteps = []string{StepCredentials, StepProfile, StepAccount, StepEvent, StepActivate}

// Step and saga statuses.
const (
	StatusPending     = "pending"
	StatusRunning     = "running"
	StatusCompleted   = "completed"
	StatusFailed      = "failed"
	StatusCompensated = "compensated"
)

// StepStatus is the state of one saga step.
type StepStatus struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// SignupProgress is what the sign-up status endpoint and the workflow query return.
type SignupProgress struct {
	SignupID  string       `json:"signup_id"`
	Status    string       `json:"status"`
	Steps     []StepStatus `json:"steps"`
	UserID    string       `json:"user_id,omitempty"`
	Error     string       `json:"error,omitempty"`
	ErrorCode string       `json:"error_code,omitempty"`
}

// UserCreated is the event published on the user.events topic.
type UserCreated struct {
	Type        string    `json:"type"`
	EventID     string    `json:"event_id"`
	UserID      string    `json:"user_id"`
	Username    string    `json:"username"`
	Email       string    `json:"email"`
	DisplayName string    `json:"display_name"`
	CreatedAt   time.Time `json:"created_at"`
}

// Kafka topics.
const (
	TopicUserEvents   = "user.events"
	TopicChatMessages = "chat.messages"
)

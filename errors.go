// Package chatflow holds the domain types and error codes shared by every
// part of the chat backend. It imports nothing internal so that any package
// can depend on it.
package chatflow

import (
	"errors"
	"fmt"
)

// Stable error codes. Clients match on these strings, so they never change
// once published; add new ones instead.
const (
	ECodeValidation         = "validation_failed"
	ECodeUsernameTaken      = "username_taken"
	ECodeEmailTaken         = "email_taken"
	ECodeInvalidCredentials = "invalid_credentials"
	ECodeInvalidToken       = "invalid_token"
	ECodeTokenReused        = "token_reused"
	ECodeUnauthorized       = "unauthorized"
	ECodeForbidden          = "forbidden"
	ECodeNotFound           = "not_found"
	ECodeNotMember          = "not_member"
	ECodeRateLimited        = "rate_limited"
	ECodeConflict           = "conflict"
	ECodeBadFrame           = "bad_frame"
	ECodeTooLarge           = "too_large"
	ECodeUnavailable        = "unavailable"
	ECodeInternal           = "internal"

	// Accounts and the social graph (issue 11).

	// ECodeCannotAddSelf: a friend request (or transfer) to oneself.
	ECodeCannotAddSelf = "cannot_add_self"
	// ECodeAlreadyFriends: a friend request to an existing friend.
	ECodeAlreadyFriends = "already_friends"
	// ECodeRequestPending: a friend request where one is already pending
	// in either direction.
	ECodeRequestPending = "request_pending"
	// ECodeAccountDisabled: the account was disabled by an admin.
	ECodeAccountDisabled = "account_disabled"
	// ECodeInsufficientFunds: a withdrawal or transfer larger than the balance.
	ECodeInsufficientFunds = "insufficient_funds"
	// ECodeBalanceNotZero: an account with money left cannot be closed.
	ECodeBalanceNotZero = "balance_not_zero"
	// ECodeDeletionInProgress: the account is being deleted.
	ECodeDeletionInProgress = "deletion_in_progress"
	// ECodeAccountClosed: the customer account is closed (its owner is
	// being deleted); no money moves into or out of it.
	ECodeAccountClosed = "account_closed"
)

// Error is a domain error carrying a stable code and a human readable detail.
type Error struct {
	Code   string
	Detail string
	// Err is the cause, for logs; clients see Code and Detail only.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Detail + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Detail
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf builds a domain error with the given code.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of a domain error anywhere in err's chain, or
// ECodeInternal for anything else.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ECodeInternal
}

// ErrorDetail returns the detail of a domain error, or a generic text for
// internal errors so that internals never leak to clients.
func ErrorDetail(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Detail
	}
	return "internal error"
}

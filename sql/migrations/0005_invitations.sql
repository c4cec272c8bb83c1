-- Consent-based membership. Adding a user to a room who has not consented
-- (does not list the adder among their friends) creates a pending
-- invitation instead; the invitee accepts (and becomes a member) or
-- declines. Answered invitations stay as a record.
CREATE TABLE chat.invitations (
    id           uuid PRIMARY KEY,
    room_id      uuid NOT NULL REFERENCES chat.rooms (id) ON DELETE CASCADE,
    inviter_id   uuid NOT NULL REFERENCES chat.profiles (user_id) ON DELETE CASCADE,
    invitee_id   uuid NOT NULL REFERENCES chat.profiles (user_id) ON DELETE CASCADE,
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'accepted', 'declined')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    responded_at timestamptz
);
-- at most one pending invitation per user and room: inviting again is a no-op
CREATE UNIQUE INDEX invitations_one_pending ON chat.invitations (room_id, invitee_id) WHERE status = 'pending';
CREATE INDEX invitations_invitee_pending ON chat.invitations (invitee_id, created_at DESC) WHERE status = 'pending';
CREATE INDEX invitations_inviter ON chat.invitations (inviter_id, invitee_id) WHERE status = 'pending';

-- user_id has blocked blocked_id: blocked_id cannot add or invite user_id to
-- a room, nor name them in a friend request.
CREATE TABLE chat.blocks (
    user_id    uuid NOT NULL REFERENCES chat.profiles (user_id) ON DELETE CASCADE,
    blocked_id uuid NOT NULL REFERENCES chat.profiles (user_id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, blocked_id),
    CHECK (user_id <> blocked_id)
);
CREATE INDEX blocks_blocked ON chat.blocks (blocked_id);

-- the rooms-per-creator cap counts these
CREATE INDEX rooms_created_by ON chat.rooms (created_by);

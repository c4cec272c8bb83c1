-- Room administration and direct messages (issue 12): per-member mute, a
-- rename counter that makes the room_renamed system event's client_msg_id
-- deterministic, room kinds, and the one DM room of each pair of users.

ALTER TABLE chat.members ADD COLUMN muted boolean NOT NULL DEFAULT false;

ALTER TABLE chat.rooms
    ADD COLUMN name_version integer NOT NULL DEFAULT 0,
    ADD COLUMN kind text NOT NULL DEFAULT 'group' CHECK (kind IN ('group', 'dm'));

-- chat.dms: the primary key on the ordered pair is what makes opening a DM
-- race-safe: concurrent openers insert, one wins, the others read it.
CREATE TABLE chat.dms (
    user_lo uuid NOT NULL,
    user_hi uuid NOT NULL,
    room_id uuid NOT NULL REFERENCES chat.rooms (id) ON DELETE CASCADE,
    PRIMARY KEY (user_lo, user_hi),
    CHECK (user_lo < user_hi)
);

package chat

// RoomChannel is the pub/sub channel of a room's events. It carries the
// room's hash tag, so a sharded channel lands on the room's slot.
func RoomChannel(room string) string { return "{r:" + room + "}" }

// UserChannel is the pub/sub channel of one user's events.
func UserChannel(user string) string { return "{u:" + user + "}" }

// presenceKey is a user's presence: a sorted set of the node instances the
// user is connected to, scored by when that entry expires (Redis time, ms).
func presenceKey(user string) string { return UserChannel(user) + ":presence" }

// presenceNodesKey is the registry of live node instances, scored by when
// each expires; presenceNodeKey is the set of users a node instance holds.
const presenceNodesKey = "presence:nodes"

func presenceNodeKey(inst string) string { return "presence:node:" + inst }

// ParseChannel splits a channel name made by RoomChannel or UserChannel
// into its kind ('r' or 'u') and id; kind is 0 for any other name. It never
// slices past the name, so an odd channel cannot panic a receive loop.
func ParseChannel(ch string) (kind byte, id string) {
	if len(ch) < 4 || ch[0] != '{' || ch[2] != ':' || ch[len(ch)-1] != '}' {
		return 0, ""
	}
	switch ch[1] {
	case 'r', 'u':
		return ch[1], ch[3 : len(ch)-1]
	}
	return 0, ""
}

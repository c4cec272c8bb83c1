package events

import "github.com/chatflow/chatflow"

// TopicNames lists the topics chatflow publishes to.
func TopicNames() []string {
	return []string{chatflow.TopicUserEvents, chatflow.TopicChatMessages, chatflow.TopicTransferEvents}
}

package api

import (
	"github.com/gofiber/fiber/v2"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/api/docs"
	"github.com/chatflow/chatflow/web"
)

func (s *Server) routes() {
	s.app.Get("/healthz", s.healthz)
	s.app.Get("/readyz", s.readyz)
	s.app.Get("/openapi.json", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
		return c.Send(docs.OpenAPI)
	})
	s.app.Get("/docs", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
		return c.Send(docs.Page)
	})

	v1 := s.app.Group("/api/v1")
	v1.Post("/signup", s.signup)
	v1.Get("/signup/:id", s.signupStatus)
	v1.Post("/auth/login", s.login)
	v1.Post("/auth/refresh", s.refresh)
	// No token: the saga revokes the user's; the random id is the capability.
	v1.Get("/deletions/:id", s.deletionStatus)

	// requireAuth goes on each route, not on a group: a group middleware would
	// answer 401 for unknown paths under /api/v1 instead of 404.
	auth := s.requireAuth
	v1.Post("/auth/logout", auth, s.logout)
	v1.Get("/me", auth, s.me)
	v1.Patch("/me", auth, s.updateMe)
	v1.Delete("/me", auth, s.deleteMe)
	v1.Get("/me/account/transactions", auth, s.transactions)
	v1.Post("/me/account/deposits", auth, s.deposit)
	v1.Post("/me/account/withdrawals", auth, s.withdraw)
	v1.Get("/me/transfers", auth, s.myTransfers)
	v1.Get("/transfers/:transfer_id", auth, s.transferStatus)
	v1.Post("/me/password", auth, s.changePassword)
	v1.Get("/users", auth, s.searchUsers)
	v1.Post("/me/avatar/uploads", auth, s.createAvatarUpload)
	v1.Put("/me/avatar", auth, s.setAvatar)
	v1.Delete("/me/avatar", auth, s.deleteAvatar)
	v1.Get("/users/:user_id/avatar", auth, s.getAvatar)
	v1.Get("/search", auth, s.searchMessages)
	v1.Get("/friends", auth, s.listFriends)
	v1.Post("/friends", auth, s.sendFriendRequest) // deprecated alias of POST /friends/requests
	v1.Delete("/friends/:user_id", auth, s.removeFriend)
	v1.Get("/friends/requests", auth, s.listFriendRequests)
	v1.Post("/friends/requests", auth, s.sendFriendRequest)
	v1.Post("/friends/requests/:user_id/accept", auth, s.acceptFriendRequest)
	v1.Post("/friends/requests/:user_id/decline", auth, s.declineFriendRequest)
	v1.Delete("/friends/requests/:user_id", auth, s.cancelFriendRequest)
	v1.Post("/users/:user_id/block", auth, s.blockUser)
	v1.Delete("/users/:user_id/block", auth, s.unblockUser)
	v1.Get("/invitations", auth, s.listInvitations)
	v1.Post("/invitations/:invitation_id/accept", auth, s.acceptInvitation)
	v1.Post("/invitations/:invitation_id/decline", auth, s.declineInvitation)
	v1.Get("/admin/stats", auth, s.requireAdmin, s.adminStats)
	v1.Get("/admin/signups", auth, s.requireAdmin, s.adminSignups)
	v1.Get("/admin/users", auth, s.requireAdmin, s.adminUsers)
	v1.Post("/admin/users/:user_id/disable", auth, s.requireAdmin, s.adminDisable)
	v1.Post("/admin/users/:user_id/enable", auth, s.requireAdmin, s.adminEnable)

	v1.Post("/rooms", auth, s.createRoom)
	v1.Get("/rooms", auth, s.listRooms)
	v1.Get("/rooms/:room_id", auth, s.getRoom)
	v1.Post("/rooms/:room_id/members", auth, s.invite)
	v1.Delete("/rooms/:room_id/members/me", auth, s.leave)
	v1.Patch("/rooms/:room_id", auth, s.renameRoom)
	v1.Delete("/rooms/:room_id/members/:user_id", auth, s.removeMember)
	v1.Put("/rooms/:room_id/mute", auth, s.muteRoom)
	v1.Post("/dms", auth, s.openDM)
	v1.Get("/rooms/:room_id/messages", auth, s.history)
	v1.Post("/rooms/:room_id/messages", auth, s.postMessage)
	v1.Patch("/rooms/:room_id/messages/:seq", auth, s.patchMessage)
	v1.Delete("/rooms/:room_id/messages/:seq", auth, s.deleteMessage)
	v1.Put("/rooms/:room_id/messages/:seq/reactions/:emoji", auth, s.putReaction)
	v1.Delete("/rooms/:room_id/messages/:seq/reactions/:emoji", auth, s.deleteReaction)
	v1.Post("/rooms/:room_id/read", auth, s.postRead)
	v1.Post("/rooms/:room_id/transfers", auth, s.createTransfer)
	v1.Post("/rooms/:room_id/uploads", auth, s.createUpload)
	v1.Post("/rooms/:room_id/messages/files", auth, s.attachFile)
	v1.Get("/rooms/:room_id/files/:upload_id", auth, s.downloadFile)

	s.app.Get("/ws", s.wsUpgrade, s.wsHandler())
	origin := ""
	if s.objects != nil {
		origin = s.objects.Origin()
	}
	s.app.Get("/", web.IndexFor(origin))
	s.app.Use("/static", web.Static())
	s.app.Use(func(c *fiber.Ctx) error {
		return chatflow.Errorf(chatflow.ECodeNotFound, "no route for %s %s", c.Method(), c.Path())
	})
}

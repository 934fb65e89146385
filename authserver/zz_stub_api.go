package authserver

func WithDemoAPI() Option             { return func(s *Server) {} }
func (s *Server) mountDemoAPI() error { return nil }

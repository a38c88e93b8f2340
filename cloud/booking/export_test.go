package booking

// CalmQueued is how many calm lots' holds wait for a writer of the shared
// group (Service.calm), for tests that must know their holds queued.
func CalmQueued(s *Service) int { return s.calm.Queued() }

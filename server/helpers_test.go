package server_test

import "github.com/trellis-project/trellis/internal/store"

func storePrecondition() store.Precondition { return store.Precondition{} }

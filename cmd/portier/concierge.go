package main

import (
	"context"
	"errors"
)

func runConcierge(ctx context.Context, args []string) error { return errors.New("not built yet") }

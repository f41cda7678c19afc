package main

import (
	"context"
	"errors"
)

func runAll(ctx context.Context, args []string) error { return errors.New("not built yet") }

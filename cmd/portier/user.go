package main

import (
	"context"
	"errors"
)

func runUser(ctx context.Context, args []string) error { return errors.New("not built yet") }

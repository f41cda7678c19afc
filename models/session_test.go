package models_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
)

func TestSessions(t *testing.T) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			ctx := context.Background()
			st := n.Store
			u, err := st.CreateUser(ctx, "sess", "password1", models.RoleOperator)
			if err != nil {
				t.Fatal(err)
			}
			secret, se, err := st.CreateSession(ctx, u.ID, "ua", "127.0.0.1", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if se.ID == secret || se.CSRFToken == "" {
				t.Fatalf("session stores its secret in clear or lacks a CSRF token: %+v", se)
			}
			got, gu, err := st.SessionBySecret(ctx, secret, time.Hour)
			if err != nil || gu.ID != u.ID || got.CSRFToken != se.CSRFToken {
				t.Fatalf("SessionBySecret = %+v, %+v, %v", got, gu, err)
			}
			if _, _, err := st.SessionBySecret(ctx, secret+"x", time.Hour); !errors.Is(err, models.ErrNoSecret) {
				t.Fatalf("wrong secret: err = %v, want ErrNoSecret", err)
			}
			// A disabled user's sessions stop working at once.
			yes := true
			if _, err := st.UpdateUser(ctx, u.ID, models.UserUpdate{Disabled: &yes}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := st.SessionBySecret(ctx, secret, time.Hour); !errors.Is(err, models.ErrNoSecret) {
				t.Fatalf("disabled user: err = %v, want ErrNoSecret", err)
			}
			no := false
			if _, err := st.UpdateUser(ctx, u.ID, models.UserUpdate{Disabled: &no}); err != nil {
				t.Fatal(err)
			}
			// Expired sessions are refused and swept.
			s2, _, err := st.CreateSession(ctx, u.ID, "", "", -time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := st.SessionBySecret(ctx, s2, time.Hour); !errors.Is(err, models.ErrNoSecret) {
				t.Fatalf("expired session: err = %v, want ErrNoSecret", err)
			}
			if n, err := st.DeleteExpiredSessions(ctx, time.Now()); err != nil || n != 1 {
				t.Fatalf("DeleteExpiredSessions = %d, %v; want 1", n, err)
			}
			// Ending all other sessions keeps the current one.
			s3, _, err := st.CreateSession(ctx, u.ID, "", "", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.DeleteUserSessions(ctx, u.ID, se.ID); err != nil {
				t.Fatal(err)
			}
			if _, _, err := st.SessionBySecret(ctx, s3, time.Hour); !errors.Is(err, models.ErrNoSecret) {
				t.Fatalf("other session survived DeleteUserSessions: %v", err)
			}
			if _, _, err := st.SessionBySecret(ctx, secret, time.Hour); err != nil {
				t.Fatalf("kept session lost: %v", err)
			}
			if err := st.DeleteSession(ctx, secret); err != nil {
				t.Fatal(err)
			}
			if _, _, err := st.SessionBySecret(ctx, secret, time.Hour); !errors.Is(err, models.ErrNoSecret) {
				t.Fatalf("logged-out session still works: %v", err)
			}
		})
	}
}

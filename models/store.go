// Package models holds the control plane's gorm models and the queries on them.
package models

import "gorm.io/gorm"

// Store is the control plane's database.
type Store struct {
	DB *gorm.DB
}

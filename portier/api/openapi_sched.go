package api

// OpenAPI additions of the scheduler's features, kept next to them rather
// than in openapi.go: the labels every task config may carry.
func init() {
	tc, _ := openAPISchemas["TaskConfig"].(obj)
	if p, ok := tc["properties"].(obj); ok {
		p["labels"] = obj{"type": "object", "additionalProperties": tStr,
			"description": "concierge labels the task requires (any type): it runs only on a concierge started with every one of them (--labels k=v); at most 16, names and values 1-63 of A-Z a-z 0-9 _ . -"}
	}
}

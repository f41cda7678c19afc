package api

import "testing"

func TestOpenAPITaskConfigLabels(t *testing.T) {
	doc := buildOpenAPI()
	schemas := doc["components"].(obj)["schemas"].(obj)
	p := schemas["TaskConfig"].(obj)["properties"].(obj)
	if _, ok := p["labels"]; !ok {
		t.Fatal("TaskConfig schema has no labels")
	}
	if _, ok := schemas["Recording"]; !ok {
		t.Fatal("no Recording schema")
	}
}

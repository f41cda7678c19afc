package views

// Webhooks is the admin page of outgoing webhooks.
type Webhooks struct {
	Rows []WebhookRow
	// Apps are the applications an endpoint may be limited to.
	Apps []WebhookApp
	// Events are the event types an endpoint may select.
	Events []string
	Form   NewWebhook
	// NewSecret is the signing secret of the endpoint just created, shown
	// once in the answer to the post; NewID its endpoint.
	NewSecret string
	NewID     int64
}

// WebhookApp is one application choice.
type WebhookApp struct {
	ID   int64
	Name string
}

// WebhookRow is one endpoint with its newest delivery attempts.
type WebhookRow struct {
	ID          int64
	URL         string
	Application string // "" for global
	Events      []string
	Enabled     bool
	Description string
	Deliveries  []WebhookDeliveryRow
}

// WebhookDeliveryRow is one delivery attempt.
type WebhookDeliveryRow struct {
	Event    string
	Attempt  int
	Code     int // 0: no HTTP answer
	Error    string
	Duration string
	Time     string
}

// NewWebhook is the create-endpoint form.
type NewWebhook struct {
	URL         string
	AppID       string // "" for global
	Events      []string
	Enabled     bool
	Description string
	Errors      FieldErrors
}

// Wants reports whether the form selects event e.
func (f NewWebhook) Wants(e string) bool {
	for _, x := range f.Events {
		if x == e {
			return true
		}
	}
	return false
}

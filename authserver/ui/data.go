package ui

// Login is the data of the sign-in page. The form posts username, password
// and the hidden fields to Action.
type Login struct {
	// ClientName names the application the user signs in to (may be empty).
	ClientName string
	Action     string
	// Hidden are extra hidden fields, such as the pending request's ID.
	Hidden   []Field
	CSRF     string
	Username string
	// Error is shown above the form when set.
	Error string
}

// PasswordChange is the data of the page that makes a user whose password
// an administrator reset choose a new one, after the reset password was
// accepted. The form posts new_password, confirm_password and the hidden
// fields (among them the single-use change handle) to Action.
type PasswordChange struct {
	ClientName string
	Action     string
	Hidden     []Field
	CSRF       string
	// Username is the user's email, for password managers.
	Username string
	// MinLength is the shortest password the policy accepts.
	MinLength int
	// Error is shown above the form when set.
	Error string
}

// Consent is the data of the consent page. Its form has two submit buttons
// named decision, with the values allow and deny.
type Consent struct {
	ClientName string
	ClientID   string
	UserName   string
	Scopes     []Scope
	Action     string
	Hidden     []Field
	CSRF       string
}

// Scope is one requested scope and what it lets the client do.
type Scope struct {
	Name        string
	Description string
}

// Logout is the data of the sign-out confirmation page.
type Logout struct {
	UserName string
	Action   string
	Hidden   []Field
	CSRF     string
}

// Message is the data of an information or error page. Code is an OAuth
// error code shown for support (never a secret or internal detail).
type Message struct {
	Title string
	Text  string
	Code  string
}

// Field is a hidden form field.
type Field struct {
	Name  string
	Value string
}

// Consents is the data of the page where a user reviews and revokes the
// consents they gave. Each consent has a form posting client_id to Action.
type Consents struct {
	UserName string
	Consents []ConsentEntry
	Action   string
	CSRF     string
	// Message confirms the last action.
	Message string
}

// ConsentEntry is one remembered consent.
type ConsentEntry struct {
	ClientID   string
	ClientName string
	Scopes     string
}

// Device is the data of the device verification page (RFC 8628 §3.3). Its
// entry form posts an input named user_code to Action; with Confirm set it
// shows the client and the code instead, and asks to allow or deny
// (buttons named decision, as on the consent page).
type Device struct {
	Action string
	CSRF   string
	// UserCode prefills the entry form, or is the code being confirmed.
	UserCode string
	// Error is shown above the entry form when set.
	Error      string
	Confirm    bool
	ClientName string
	ClientID   string
	UserName   string
	Scopes     []Scope
	Hidden     []Field
}

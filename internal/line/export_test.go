package line

// Printable is the rule ParseWebhook applies to an event's ID and type, for the test that
// checks the parser against struct decoding.
var Printable = token

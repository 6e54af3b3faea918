package web

import "net/http"

// inboxRoutes: the pages of this area are being written.
func (c *Console) inboxRoutes(mux *http.ServeMux) {}

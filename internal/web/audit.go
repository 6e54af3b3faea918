package web

import "net/http"

// auditRoutes: the pages of this area are being written.
func (c *Console) auditRoutes(mux *http.ServeMux) {}

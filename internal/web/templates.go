package web

import "net/http"

// templateRoutes: the pages of this area are being written.
func (c *Console) templateRoutes(mux *http.ServeMux) {}

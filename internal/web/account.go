package web

import "net/http"

// accountRoutes: the pages of this area are being written.
func (c *Console) accountRoutes(mux *http.ServeMux) {}

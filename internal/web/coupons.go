package web

import "net/http"

// couponRoutes: the pages of this area are being written.
func (c *Console) couponRoutes(mux *http.ServeMux) {}

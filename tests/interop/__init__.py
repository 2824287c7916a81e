"""The matrix-js-sdk (Element crypto) test client and its Python driver."""

"""Staff sessions of the web page: held server-side, named by a random token in a cookie."""

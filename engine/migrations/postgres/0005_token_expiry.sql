-- Tokens may expire (issue 9.4: `civicflow token create --expires`); NULL never expires. A
-- revoked token is deleted. Never edit an applied migration: add a new one.

ALTER TABLE tokens ADD COLUMN expires_at TIMESTAMPTZ;

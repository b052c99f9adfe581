"""Password encryption (Fernet): entry points encrypt user passwords, the Batch activity decrypts them."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken


class PasswordCipher:
    """Encrypts and decrypts node-user passwords with the app's PASSWORD_ENCRYPTION_KEY (a Fernet key)."""

    def __init__(self, key: str) -> None:
        from provisioning.settings import SettingsError

        try:
            self._fernet = Fernet(key.strip().encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise SettingsError(
                "PASSWORD_ENCRYPTION_KEY: must be a Fernet key (32 url-safe base64-encoded bytes; "
                'generate one with `python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"`)'
            ) from exc

    def encrypt(self, password: str) -> str:
        return self._fernet.encrypt(password.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise ValueError(
                "a password could not be decrypted: PASSWORD_ENCRYPTION_KEY is not the key that encrypted it"
            ) from exc

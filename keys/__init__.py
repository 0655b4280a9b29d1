"""OpenPGP for Forewarn. The only package that imports gnupg; it never imports app.

- home.py        the service's GnuPG home: its folder, passphrase, lock and gpg-agent
- servicekey.py  the service key's life: generate, import, export, expiry, renew, certifications
- keyring.py     ServiceKeyring, what the application holds: sign, encrypt to a pinned
                 certificate, and unwrap (decrypt) a reporter's message
- verify.py      signatures checked against chosen certificates, in a throwaway home
- inspect.py     other people's certificates judged (uploads, attachments, Autocrypt)
- packets.py     the one OpenPGP armor and packet reader, before gpg sees anything
- gpgrun.py      the one way gpg is started: bounded in time and output
- errors.py      KeysError and its kinds
"""

"""OpenPGP for Forewarn. The only package that imports gnupg."""

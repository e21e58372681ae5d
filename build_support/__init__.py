"""Build-time support for packaging pistatsd (not part of the installed package).

The dashboard's charting library is a pinned, checksummed dependency rather
than a file of the repository: L{build_support.pins} records what is shipped,
L{build_support.vendor} fetches and verifies it with the standard library only
(it runs inside pip's isolated build environment), and
L{build_support.commands} is the setuptools command that puts it into every
wheel and editable install.
"""

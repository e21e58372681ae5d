"""C{python -m pistatsd.client}: same as the C{pistatsd-client} console script."""

from pistatsd.client.cli import main

main()

"""moto's server, with DynamoDB's single-item writes made atomic.

DynamoDB applies each conditional write to one item atomically: of several
concurrent claims that read the same state, exactly one wins. moto's
backend checks the condition and then applies the update in separate
steps, and its server handles requests on several threads, so concurrent
conditional writes can all pass their condition (seen: three winning claims
of one cold key in a 50-request herd). The daemon's tests rely on the real
service's atomicity, so this wrapper serialises moto's item reads and writes
with one lock, then starts moto's own server with the same arguments
(scripts/local-aws.sh runs it as `moto_server.py -H 127.0.0.1 -p PORT`).

Reads take the lock for as long as they look at an item: moto's GetItem and
BatchGetItem responses (which call the backend's `get_item` per key, then
render the item it returned, a live object) are serialised whole, so a read
never sees half of a write. BatchGetItem takes the lock once per call, so
its items are read one after another without a write in between: a
stronger promise than DynamoDB's (each item consistent on its own), which
the daemon does not rely on.
"""

import functools
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_ITEM_LOCK = threading.RLock()

# Every backend entry point that reads or writes items: a write is applied
# whole before any other reads or writes an item.
_ITEM_OPERATIONS = (
    "get_item",
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",
)


def _serialised(operation):
    @functools.wraps(operation)
    def locked(*args, **kwargs):
        with _ITEM_LOCK:
            return operation(*args, **kwargs)

    return locked


# The responses that read an item and render it.
_READ_RESPONSES = ("get_item", "batch_get_item")

for _name in _ITEM_OPERATIONS:
    setattr(DynamoDBBackend, _name, _serialised(getattr(DynamoDBBackend, _name)))
for _name in _READ_RESPONSES:
    setattr(DynamoHandler, _name, _serialised(getattr(DynamoHandler, _name)))

if __name__ == "__main__":
    sys.exit(main())

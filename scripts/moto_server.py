#!/usr/bin/env python3
"""Run moto's server for ferry's local mode, with the gaps ferry needs filled.

Usage: moto_server.py [--host 127.0.0.1] [--port 5000] [--pid-file PATH]

Written against moto 5.2.1 (the version scripts/lib/common.sh installs). Every patch
below checks that the moto code it builds on is still there and, if not, the launcher
stops before serving with "ferry moto_server: cannot apply patch ...": an emulator that
silently lacks a piece ferry relies on is worse than one that does not start.

Patches:

1. Step Functions, repeated executions. With executions enabled
   (POST /moto-api/config {"stepfunctions": {"execute_state_machine": true}}), moto's
   StartExecution takes a copy.deepcopy of the state machine to give the new execution
   a frozen view of it. That copy walks into the machine's earlier executions, whose
   worker threads hold locks that cannot be copied, so in moto 5.2.1 every
   StartExecution after the first one in an account/region answers HTTP 500. The patch
   gives the state machine classes (StateMachineInstance, hence StateMachine and
   StateMachineVersion) a __deepcopy__ that copies the definition-side attributes, keeps
   a reference to the same backend instead of copying it, and leaves the clone's list of
   executions empty (the clone only describes the machine an execution runs).

2. Step Functions, two calls Terraform's AWS provider (5.x) makes that moto 5.2.1 lacks
   (it answers 500 "not implemented"):
   - ValidateStateMachineDefinition: parses the definition and answers
     {"result": "OK", "diagnostics": []}, or {"result": "FAIL", ...} with one ERROR
     diagnostic when the definition is not JSON (INVALID_JSON_DESCRIPTION), is not an
     object with a non-empty States object and a string StartAt
     (SCHEMA_VALIDATION_FAILED), or StartAt names no state (MISSING_TRANSITION_TARGET).
     Deeper checks are left to the project's ASL linter.
   - ListStateMachineVersions: lists the versions moto records for the machine (those
     published with publish=true), newest first; usually an empty list.

3. DynamoDB Kinesis streaming destinations: moto 5.2.1 has no
   Enable/Describe/Disable/UpdateKinesisStreamingDestination (500). The patch keeps the
   destinations on the table object (so they vanish with the table) and answers with
   the real API's shapes:
   - the table must exist (ResourceNotFoundException otherwise);
   - the StreamArn must name a stream that exists in moto's Kinesis backend for the
     ARN's account and region (ValidationException otherwise);
   - Enable answers DestinationStatus ENABLING and the destination is ACTIVE at once
     (as moto does for other asynchronous AWS work); enabling a stream that is
     already ACTIVE on the table is a ValidationException;
   - Disable answers DISABLING and the destination is DISABLED at once;
   - Update changes ApproximateCreationDateTimePrecision (MILLISECOND default or
     MICROSECOND) of an ACTIVE destination and answers UPDATING;
   - Describe lists every destination with StreamArn, DestinationStatus,
     DestinationStatusDescription and ApproximateCreationDateTimePrecision.
   Only the control plane is emulated: item changes are NOT written to the stream.

4. DynamoDB, atomic requests. moto's server answers requests on many threads, but its
   DynamoDB backend checks a condition and then writes without a lock, so two
   concurrent conditional writes (or TransactWriteItems) can both pass the same check.
   Real DynamoDB applies each request atomically; ferry's state store relies on that
   to refuse a second start of a migration. The patch runs DynamoDB requests one at a
   time, behind one lock around DynamoHandler.call_action.

5. DynamoDB ImportTable: JSON escapes, and speed. moto reads import files with
   py_partiql_parser's JsonParser, which does not undo JSON escapes (an escaped quote ends
   the string; \n, \t, \\ stay two characters), and puts every item through
   Table.put_item, whose item object re-sums the sizes of all attributes at each attribute
   it adds (quadratic per item): about 3,000 items/s. The patch replaces
   TableImport._process_s3_files: each non-empty line of a file is one json.loads document
   (escapes undone, as DynamoDB reads them); an item gets put_item's checks (key present
   and of the key's type, attribute types, key sizes) and its size is summed once (only
   when the line is longer than the limit: an item is never bigger than its DynamoDB JSON
   line) before it goes straight into the table's items (a later item with the same key
   replaces the earlier one, as put_item does). A line that is not JSON, or an item that
   fails a check, counts as an error (ErrorCount, FailureMessage) like moto's own import.
   The imported table and its items are left out of moto's list of every model instance
   (its dashboard's), so deleting the table frees them.

6. S3 CompleteMultipartUpload names its XML root CompleteMultipartUploadResponse; S3
   (and so the AWS SDKs) use CompleteMultipartUploadResult, and the Rust SDK rejects the
   answer although the object was completed. The patch renames the root element.

7. Step Functions executions are on from the start. moto keeps state machines in one of two
   backends depending on the flag POST /moto-api/config {"stepfunctions":
   {"execute_state_machine": true}} sets, so turning it on half-way (as a test did) hides
   the machines made before; and with it off, executions stay RUNNING forever, which left
   a client that follows an execution to its end waiting. Ferry's local mode runs state
   machines, so the launcher sets it before serving.

8. DynamoDB ExportTableToPointInTime, speed. moto builds the export in one string with +=,
   sorts every item by key first (Decimal comparisons), and gzips at level 9: for a million
   items, minutes. The patch writes the items in table order (an export has no order), as
   the same JSON lines, into data files of at most EXPORT_ITEMS_PER_FILE items each (AWS
   also writes several data files) gzipped at level 1. Both patches keep only the table's
   ARN on the finished import/export object (all that describing it reads), so deleting
   the table frees its items.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import os
import sys
import threading
import types
from typing import Any

EXPECTED_MOTO_VERSION = "5.2.1"


def _fail(patch: str, why: str) -> None:
    sys.stderr.write(
        f"ferry moto_server: cannot apply patch '{patch}': {why}\n"
        f"ferry moto_server: this launcher was written for moto {EXPECTED_MOTO_VERSION}; "
        "check scripts/moto_server.py against the installed moto\n"
    )
    raise SystemExit(3)


def _require(patch: str, obj: Any, *names: str) -> None:
    for name in names:
        if not hasattr(obj, name):
            _fail(patch, f"{getattr(obj, '__name__', obj)!s} has no attribute '{name}'")


def _require_operations(patch: str, service: str, *operations: str) -> None:
    """The answers are serialised from botocore's model: the operations must be in it."""
    import botocore.session

    model = botocore.session.get_session().get_service_model(service)
    missing = [op for op in operations if op not in model.operation_names]
    if missing:
        _fail(patch, f"botocore's {service} model lacks {', '.join(missing)}")


# --------------------------------------------------------------------------- patch 1


def patch_sfn_deepcopy() -> None:
    name = "stepfunctions: deepcopy of state machines"
    try:
        from moto.stepfunctions import models as sfn_models
    except ImportError as err:
        _fail(name, f"import moto.stepfunctions.models: {err}")
    _require(name, sfn_models, "StateMachineInstance", "StateMachine")
    base = sfn_models.StateMachineInstance
    if not issubclass(sfn_models.StateMachine, base):
        _fail(name, "StateMachine no longer derives from StateMachineInstance")
    if "__deepcopy__" in vars(base) or "__deepcopy__" in vars(sfn_models.StateMachine):
        _fail(name, "moto now defines __deepcopy__ itself; the patch may be obsolete")

    def __deepcopy__(self: Any, memo: dict[int, Any]) -> Any:
        cls = type(self)
        clone = cls.__new__(cls)
        memo[id(self)] = clone
        for key, value in self.__dict__.items():
            if key == "executions":
                clone.__dict__[key] = []
            elif key == "backend":
                clone.__dict__[key] = value
            else:
                clone.__dict__[key] = copy.deepcopy(value, memo)
        return clone

    base.__deepcopy__ = __deepcopy__  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- patch 2


def _validate_definition(definition: Any) -> list[dict[str, str]]:
    def error(code: str, message: str) -> list[dict[str, str]]:
        return [{"severity": "ERROR", "code": code, "message": message}]

    if not isinstance(definition, str):
        return error("SCHEMA_VALIDATION_FAILED", "definition must be a string")
    try:
        doc = json.loads(definition)
    except ValueError as err:
        return error("INVALID_JSON_DESCRIPTION", f"Invalid JSON: {err}")
    if not isinstance(doc, dict):
        return error("SCHEMA_VALIDATION_FAILED", "The definition must be a JSON object")
    states = doc.get("States")
    start_at = doc.get("StartAt")
    if not isinstance(states, dict) or not states:
        return error("SCHEMA_VALIDATION_FAILED", "'States' must be a non-empty object")
    if not isinstance(start_at, str):
        return error("SCHEMA_VALIDATION_FAILED", "'StartAt' must be a string")
    if start_at not in states:
        return error(
            "MISSING_TRANSITION_TARGET",
            f"Missing 'Next' target: {start_at} (StartAt)",
        )
    return []


def patch_sfn_operations() -> None:
    name = "stepfunctions: ValidateStateMachineDefinition, ListStateMachineVersions"
    try:
        from moto.core.responses import ActionResult
        from moto.stepfunctions import responses as sfn_responses
    except ImportError as err:
        _fail(name, f"import moto.stepfunctions.responses: {err}")
    cls = sfn_responses.StepFunctionResponse
    _require(name, cls, "stepfunction_backend", "_get_param")
    for method in ("validate_state_machine_definition", "list_state_machine_versions"):
        if method in vars(cls):
            _fail(name, f"moto now implements {method}; the patch may be obsolete")
    _require_operations(
        name, "stepfunctions", "ValidateStateMachineDefinition", "ListStateMachineVersions"
    )

    def validate_state_machine_definition(self: Any) -> Any:
        diagnostics = _validate_definition(self._get_param("definition"))
        return ActionResult(
            {
                "result": "FAIL" if diagnostics else "OK",
                "diagnostics": diagnostics,
                "truncated": False,
            }
        )

    def list_state_machine_versions(self: Any) -> Any:
        arn = self._get_param("stateMachineArn")
        machine = self.stepfunction_backend.describe_state_machine(arn)
        versions = sorted(
            getattr(machine, "versions", {}).items(), key=lambda kv: kv[0], reverse=True
        )
        return ActionResult(
            {
                "stateMachineVersions": [
                    {"stateMachineVersionArn": v.arn, "creationDate": v.creation_date}
                    for _, v in versions
                ]
            }
        )

    cls.validate_state_machine_definition = validate_state_machine_definition
    cls.list_state_machine_versions = list_state_machine_versions


# --------------------------------------------------------------------------- patch 3

_KINESIS_LOCK = threading.Lock()
_PRECISIONS = ("MILLISECOND", "MICROSECOND")


def patch_dynamodb_kinesis() -> None:
    name = "dynamodb: Kinesis streaming destinations"
    try:
        from moto.core.responses import ActionResult
        from moto.dynamodb import responses as ddb_responses
        from moto.dynamodb.exceptions import (
            MockValidationException,
            ResourceNotFoundException,
        )
        from moto.kinesis.models import kinesis_backends
    except ImportError as err:
        _fail(name, f"import: {err}")
    cls = ddb_responses.DynamoHandler
    _require(name, cls, "dynamodb_backend", "call_action")
    methods = (
        "enable_kinesis_streaming_destination",
        "describe_kinesis_streaming_destination",
        "disable_kinesis_streaming_destination",
        "update_kinesis_streaming_destination",
    )
    for method in methods:
        if method in vars(cls):
            _fail(name, f"moto now implements {method}; the patch may be obsolete")
    _require_operations(
        name,
        "dynamodb",
        "EnableKinesisStreamingDestination",
        "DescribeKinesisStreamingDestination",
        "DisableKinesisStreamingDestination",
        "UpdateKinesisStreamingDestination",
    )
    from moto.dynamodb.models import DynamoDBBackend

    _require(name, DynamoDBBackend, "get_table")

    def table_of(handler: Any) -> Any:
        table_name = handler.body.get("TableName")
        try:
            return handler.dynamodb_backend.get_table(table_name)
        except ResourceNotFoundException:
            raise ResourceNotFoundException(table_name=table_name)

    def destinations(table: Any) -> dict[str, dict[str, str]]:
        found = getattr(table, "ferry_kinesis_destinations", None)
        if found is None:
            found = {}
            table.ferry_kinesis_destinations = found
        return found

    def check_stream(handler: Any, arn: Any) -> str:
        parts = arn.split(":", 5) if isinstance(arn, str) else []
        if len(parts) != 6 or parts[2] != "kinesis" or not parts[5].startswith("stream/"):
            raise MockValidationException(f"Invalid StreamArn: {arn}")
        region, account = parts[3], parts[4]
        try:
            streams = list(kinesis_backends[account][region].streams.values())
        except (KeyError, ValueError):
            streams = []
        if not any(stream.arn == arn for stream in streams):
            raise MockValidationException(f"Kinesis stream {arn} does not exist")
        return arn

    def precision_of(config: Any, default: str) -> str:
        value = (config or {}).get("ApproximateCreationDateTimePrecision") or default
        if value not in _PRECISIONS:
            raise MockValidationException(
                "ApproximateCreationDateTimePrecision must be one of "
                + ", ".join(_PRECISIONS)
            )
        return value

    def enable_kinesis_streaming_destination(self: Any) -> Any:
        table = table_of(self)
        arn = check_stream(self, self.body.get("StreamArn"))
        config = self.body.get("EnableKinesisStreamingConfiguration")
        precision = precision_of(config, "MILLISECOND")
        with _KINESIS_LOCK:
            dests = destinations(table)
            if dests.get(arn, {}).get("DestinationStatus") == "ACTIVE":
                raise MockValidationException(
                    f"Table is already streaming to the destination: {arn}"
                )
            dests[arn] = {
                "StreamArn": arn,
                "DestinationStatus": "ACTIVE",
                "DestinationStatusDescription": "Kinesis streaming is active",
                "ApproximateCreationDateTimePrecision": precision,
            }
        return ActionResult(
            {
                "TableName": table.name,
                "StreamArn": arn,
                "DestinationStatus": "ENABLING",
                "EnableKinesisStreamingConfiguration": {
                    "ApproximateCreationDateTimePrecision": precision
                },
            }
        )

    def active_destination(table: Any, arn: Any) -> dict[str, str]:
        dest = destinations(table).get(arn)
        if not dest or dest["DestinationStatus"] != "ACTIVE":
            raise MockValidationException(
                f"Table is not streaming to the destination: {arn}"
            )
        return dest

    def disable_kinesis_streaming_destination(self: Any) -> Any:
        table = table_of(self)
        arn = self.body.get("StreamArn")
        with _KINESIS_LOCK:
            dest = active_destination(table, arn)
            dest["DestinationStatus"] = "DISABLED"
            dest["DestinationStatusDescription"] = "Kinesis streaming is disabled"
        return ActionResult(
            {"TableName": table.name, "StreamArn": arn, "DestinationStatus": "DISABLING"}
        )

    def update_kinesis_streaming_destination(self: Any) -> Any:
        table = table_of(self)
        arn = self.body.get("StreamArn")
        config = self.body.get("UpdateKinesisStreamingConfiguration")
        with _KINESIS_LOCK:
            dest = active_destination(table, arn)
            precision = precision_of(config, dest["ApproximateCreationDateTimePrecision"])
            dest["ApproximateCreationDateTimePrecision"] = precision
        return ActionResult(
            {
                "TableName": table.name,
                "StreamArn": arn,
                "DestinationStatus": "UPDATING",
                "UpdateKinesisStreamingConfiguration": {
                    "ApproximateCreationDateTimePrecision": precision
                },
            }
        )

    def describe_kinesis_streaming_destination(self: Any) -> Any:
        table = table_of(self)
        with _KINESIS_LOCK:
            dests = [dict(d) for d in destinations(table).values()]
        return ActionResult(
            {"TableName": table.name, "KinesisDataStreamDestinations": dests}
        )

    cls.enable_kinesis_streaming_destination = enable_kinesis_streaming_destination
    cls.describe_kinesis_streaming_destination = describe_kinesis_streaming_destination
    cls.disable_kinesis_streaming_destination = disable_kinesis_streaming_destination
    cls.update_kinesis_streaming_destination = update_kinesis_streaming_destination


def patch_dynamodb_atomic() -> None:
    from moto.dynamodb.responses import DynamoHandler

    _require("dynamodb atomic requests", DynamoHandler, "call_action")
    unlocked = DynamoHandler.call_action
    lock = threading.Lock()

    def call_action(self: Any) -> Any:
        with lock:
            return unlocked(self)

    DynamoHandler.call_action = call_action


# --------------------------------------------------------------------------- patches 5, 8

_ITEM_SIZE_LIMIT = 405000  # moto's LimitedSizeDict limit (DynamoDB's 400 KB)
EXPORT_ITEMS_PER_FILE = 250_000
_GC_LOCK = threading.Lock()
_GC_STATE = {"pauses": 0, "was_enabled": False}


@contextlib.contextmanager
def _gc_paused() -> Any:
    """No cyclic garbage collection while items are bulk-loaded or dumped: each collection
    walks every object the emulator holds, and a million new objects start dozens of them
    (the import ran 2.5x slower with it). Items hold no cycles; reference counting frees
    them. Nested and concurrent pauses count, the last one out turns collection back on."""
    with _GC_LOCK:
        _GC_STATE["pauses"] += 1
        if _GC_STATE["pauses"] == 1:
            _GC_STATE["was_enabled"] = gc.isenabled()
            gc.disable()
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_STATE["pauses"] -= 1
            if _GC_STATE["pauses"] == 0 and _GC_STATE["was_enabled"]:
                gc.enable()


def patch_import_fast() -> None:
    """5. ImportTable reads JSON lines and inserts each item once (see the module docs)."""
    name = "dynamodb ImportTable: JSON lines, speed"
    from moto.core.utils import gzip_decompress
    from moto.dynamodb.exceptions import (
        InvalidAttributeTypeError,
        ItemSizeTooLarge,
        MockValidationException,
    )
    from moto.dynamodb.limits import HASH_KEY_MAX_LENGTH, RANGE_KEY_MAX_LENGTH
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.models.table_import import TableImport

    _require(name, TableImport, "_process_s3_files")
    _require(name, Table, "_validate_item_types", "_validate_number_type",
             "_validate_key_sizes", "get_item")
    _require(name, Item, "size")
    _require(name, Table, "instances_tracked")
    if RANGE_KEY_MAX_LENGTH > HASH_KEY_MAX_LENGTH:
        _fail(name, "a range key may now be longer than a hash key")

    new = object.__new__

    def typed(value: Any) -> Any:
        # DynamoType(value), without its generic code for the scalar types (L, M recurse).
        if type(value) is dict and len(value) == 1:
            ((kind, inner),) = value.items()
            if kind != "L" and kind != "M":
                made = new(DynamoType)
                made.type, made.value = kind, inner
                return made
        return DynamoType(value)

    def check_types(table: Any, attrs: dict[str, Any]) -> None:
        # table._validate_item_types(attrs), with strings and numbers checked inline.
        for name, value in attrs.items():
            if type(value) is dict and len(value) == 1:
                ((kind, inner),) = value.items()
                if kind == "S" and type(inner) is str:
                    continue
                if kind == "N" and type(inner) is str:
                    table._validate_number_type(inner)
                    continue
            table._validate_item_types({name: value})

    def put(table: Any, attrs: Any, line_bytes: int) -> None:
        # Table.put_item with no condition (moto 5.2.1, table.py), the item built once.
        if type(attrs) is not dict:
            raise MockValidationException("Item must be a map of attribute values")
        key_types = [(table.hash_key_attr, table.hash_key_type)]
        if table.range_key_attr is not None:
            key_types.append((table.range_key_attr, table.range_key_type))
        key = []
        for attr, want in key_types:
            if attr not in attrs:
                raise MockValidationException(
                    "One or more parameter values were invalid: Missing the key "
                    f"{attr} in the item"
                )
            key.append(typed(attrs[attr]))
            if key[-1].type != want:
                raise InvalidAttributeTypeError(attr, expected_type=want, actual_type=key[-1].type)
        check_types(table, attrs)
        if line_bytes > RANGE_KEY_MAX_LENGTH:  # a shorter line holds no key that long
            table._validate_key_sizes(attrs)
        # dict.update does not call LimitedSizeDict.__setitem__ (the quadratic check).
        item = new(Item)
        item.attrs = LimitedSizeDict({name: typed(value) for name, value in attrs.items()})
        item.hash_key = key[0]
        item.range_key = key[1] if len(key) > 1 else None
        if line_bytes > _ITEM_SIZE_LIMIT and item.size() > _ITEM_SIZE_LIMIT:
            raise ItemSizeTooLarge
        current = None
        if table.stream_shard is not None:
            current = table.get_item(item.hash_key, item.range_key)
        if item.range_key is not None:
            table.items[item.hash_key][item.range_key] = item
        else:
            table.items[item.hash_key] = item
        if table.stream_shard is not None:
            table.stream_shard.add(current, item)

    def _process_s3_files(self: Any, s3_backend: Any, bucket: Any) -> None:
        # Table creation and listing as in moto's own _process_s3_files.
        dynamo = dynamodb_backends[self.account_id][self.region_name]
        self.table = dynamo.create_table(
            name=self.table_name, billing_mode=self.billing_mode,
            throughput=self.throughput, schema=self.key_schema,
            global_indexes=self.global_indexes, indexes=None, attr=self.attrs,
            sse_specification=None, streams=None, tags=[],
            deletion_protection_enabled=False, warm_throughput=None,
        )
        # moto tracks every model instance for its dashboard (BaseModel.instances_tracked),
        # which would keep a deleted table's items in memory for good: leave this one out.
        # (The items below are made without BaseModel.__new__, so they are not tracked.)
        tracked = type(self.table).instances_tracked
        tracked[:] = [t for t in tracked if t is not self.table]
        keys, _, _, _ = s3_backend.list_objects(
            bucket, prefix=self.s3_source.get("S3KeyPrefix"), delimiter=None,
            marker=None, max_keys=None,
        )
        with _gc_paused():
            for key in keys:
                content = key.value
                if self.compression_type == "GZIP":
                    content = gzip_decompress(content)
                for line in content.splitlines():
                    if not line.strip():
                        continue
                    self.processed_count += 1
                    self.processed_bytes += len(line)
                    try:
                        put(self.table, json.loads(line.decode("utf-8"))["Item"], len(line))
                        self.imported_count += 1
                    except Exception as e:  # moto's import counts every bad item alike
                        self.failure_message = str(e)
                        self.error_count += 1
        self.status = "COMPLETED" if self.error_count == 0 else "FAILED"
        # Describing the import needs the table's ARN only: a deleted table's items are freed.
        self.table = None

    TableImport._process_s3_files = _process_s3_files


def patch_export_fast() -> None:
    """8. ExportTableToPointInTime in table order, several gzip-1 files (see the module docs)."""
    name = "dynamodb ExportTableToPointInTime: speed"
    import gzip
    from uuid import uuid4

    from moto.dynamodb.models.table_export import TableExport
    from moto.dynamodb.models.utilities import DynamoJsonEncoder

    _require(name, TableExport, "_backup_to_s3_file")

    def items(table: Any) -> Any:
        # list() of a dict is taken at once: a write during the export cannot break the loop.
        for entry in list(table.items.values()):
            if table.range_key_attr:
                yield from list(entry.values())
            else:
                yield entry

    def _backup_to_s3_file(self: Any, s3_backend: Any) -> None:
        encoder = DynamoJsonEncoder()  # what moto's dynamo_json_dump uses, made once
        export = f"{self.s3_prefix}/AWSDynamoDB/{uuid4()}/data/"
        lines: list[str] = []

        def flush() -> None:
            body = gzip.compress("".join(lines).encode("utf-8"), compresslevel=1)
            s3_backend.put_object(bucket_name=self.s3_bucket,
                                  key_name=f"{export}{uuid4()}.json.gz", value=body)
            lines.clear()

        with _gc_paused():
            for item in items(self.table):
                lines.append(encoder.encode(item.to_json(root_attr_name="Item")) + "\n")
                self.processed_bytes += len(lines[-1])
                self.item_count += 1
                if len(lines) >= EXPORT_ITEMS_PER_FILE:
                    flush()
            if lines or not self.item_count:
                flush()
        # Describing and listing exports read the table's ARN only: keep just that, so a deleted
        # table's items are freed.
        self.table = types.SimpleNamespace(table_arn=self.table.table_arn)
        self.status = "COMPLETED" if self.error_count == 0 else "FAILED"

    TableExport._backup_to_s3_file = _backup_to_s3_file


def patch_s3_complete_multipart_root() -> None:
    from moto.s3.responses import S3Response

    _require("s3 complete multipart root", S3Response, "_key_response_post")
    unpatched = S3Response._key_response_post

    def _key_response_post(self: Any, request: Any, body: bytes, bucket_name: str,
                           query: dict[str, Any], key_name: str) -> Any:
        status, headers, answer = unpatched(self, request, body, bucket_name, query, key_name)
        if "uploadId" in query and isinstance(answer, (str, bytes)):
            wrong, right = "CompleteMultipartUploadResponse", "CompleteMultipartUploadResult"
            if isinstance(answer, bytes):
                answer = answer.replace(wrong.encode(), right.encode())
            else:
                answer = answer.replace(wrong, right)
        return status, headers, answer

    S3Response._key_response_post = _key_response_post


# --------------------------------------------------------------------------- main


def enable_sfn_execution() -> None:
    """7. Step Functions executions on from the start (see the module docs)."""
    name = "sfn-execution-on"
    from moto.core import config

    _require(name, config, "default_user_config")
    sfn = config.default_user_config.get("stepfunctions")
    if not isinstance(sfn, dict) or "execute_state_machine" not in sfn:
        _fail(name, "moto's default config has no stepfunctions.execute_state_machine")
    sfn["execute_state_machine"] = True


def apply_patches() -> None:
    import moto

    version = getattr(moto, "__version__", "?")
    if version != EXPECTED_MOTO_VERSION:
        sys.stderr.write(
            f"ferry moto_server: warning: moto {version} is installed, the patches were "
            f"written for {EXPECTED_MOTO_VERSION}\n"
        )
    patch_sfn_deepcopy()
    patch_sfn_operations()
    patch_dynamodb_kinesis()
    patch_dynamodb_atomic()
    patch_import_fast()
    patch_s3_complete_multipart_root()
    enable_sfn_execution()
    patch_export_fast()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--pid-file", help="write this process's id here once patched")
    args = parser.parse_args(argv)

    try:
        import moto.server
    except ImportError as err:
        sys.stderr.write(
            f"ferry moto_server: cannot import moto's server ({err}); "
            "install it with: pip install 'moto[server]'\n"
        )
        raise SystemExit(2)
    apply_patches()
    if args.pid_file:
        tmp = f"{args.pid_file}.tmp"
        with open(tmp, "w", encoding="ascii") as out:
            out.write(f"{os.getpid()}\n")
        os.replace(tmp, args.pid_file)
    sys.stderr.write(
        f"ferry moto_server: patched moto, serving on http://{args.host}:{args.port}\n"
    )
    sys.stderr.flush()
    moto.server.main(["--host", args.host, "--port", str(args.port)])


if __name__ == "__main__":
    main()

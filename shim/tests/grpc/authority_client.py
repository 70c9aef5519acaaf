"""A grpcio client of hoist serve's two sockets, for shim/tests/it/authority.rs.

grpcio (grpc-core) is one of the clients that send a unix socket's path as HTTP/2 `:authority`:
percent-encoded by default, or literally with `grpc.default_authority` set to the path, as
grpc-go before 1.64 (kubelet and crictl up to 1.30) and grpc-java do.

Usage: authority_client.py CRI_SOCKET SNAPSHOTS_SOCKET IMAGE_REF IMAGE_ID CHAIN_ID

Calls, for each socket and each authority form, with the messages encoded by hand (no generated
stubs): ImageService ListImages, ImageStatus and ImageFsInfo on the CRI socket, Snapshots Stat on
the snapshots socket. Prints one JSON object per call: socket, form, method, ok, the gRPC code
and details on failure, and whether the answer names what it should.
"""

import json
import sys

import grpc


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(number, payload):
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def call(channel, method, request):
    stub = channel.unary_unary(
        method,
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    return stub(request, timeout=30)


def main():
    cri, snapshots, ref, image_id, chain_id = sys.argv[1:6]
    forms = {
        "default": [],
        "literal-path": None,  # set per socket below
    }
    image_spec = field(1, field(1, ref.encode()))
    calls = {
        cri: [
            ("/runtime.v1.ImageService/ListImages", b"", image_id),
            ("/runtime.v1.ImageService/ImageStatus", image_spec, image_id),
            ("/runtime.v1.ImageService/ImageFsInfo", b"", None),
        ],
        snapshots: [
            (
                "/containerd.services.snapshots.v1.Snapshots/Stat",
                field(1, b"hoist") + field(2, chain_id.encode()),
                chain_id,
            ),
        ],
    }
    for socket, methods in calls.items():
        for form in forms:
            options = [] if form == "default" else [("grpc.default_authority", socket)]
            with grpc.insecure_channel("unix:" + socket, options=options) as channel:
                for method, request, expect in methods:
                    result = {"socket": socket, "form": form, "method": method}
                    try:
                        answer = call(channel, method, request)
                        result["ok"] = True
                        result["names"] = expect is None or expect.encode() in answer
                    except grpc.RpcError as e:
                        result["ok"] = False
                        result["code"] = str(e.code())
                        result["details"] = e.details()
                    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

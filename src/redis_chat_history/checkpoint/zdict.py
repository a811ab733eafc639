"""The checkpointer's compression dictionary: stored values are deflated against it.

Checkpoints, metadata, pending writes and channel values are small and alike (the same
keys, channel names and message fields each time): deflate alone barely shrinks them,
deflate primed with their common structure cuts most (a create_agent checkpoint record
from about 290 bytes to about 60). The dictionary holds no content of any conversation:
serialized empty messages, a tool call, a checkpoint and metadata of LangGraph's shapes.

FROZEN: values stored with the marker ``d1+`` need exactly these bytes to be read back.
A better dictionary gets a new marker (``d2+``), never these bytes changed.
"""

from __future__ import annotations

import base64
import zlib

_DICTIONARY_1 = base64.b64decode(
    """
    bXNncGFjawCIpnNvdXJjZaZ1cGRhdGWkc3RlcAGncGFyZW50c4Cmd3JpdGVzwKZydW5faWTZJDAwMDAwMDAwLTAw
    MDAtMDAwMC0wMDAwLTAwMDAwMDAwMDAwMKl0aHJlYWRfaWSmdGhyZWFkrWNoZWNrcG9pbnRfbnOgp3VzZXJfaWSk
    dXNlcm1zZ3BhY2sAg6Zzb3VyY2WkZm9ya6RzdGVwAadwYXJlbnRzgaDZJDFmMDAwMDAwLTAwMDAtNjAwMC04MDAw
    LTAwMDAwMDAwMDAwMG1zZ3BhY2sAkcetBZS+bGFuZ2NoYWluX2NvcmUubWVzc2FnZXMuc3lzdGVtrVN5c3RlbU1l
    c3NhZ2WGp2NvbnRlbnSgsWFkZGl0aW9uYWxfa3dhcmdzgLFyZXNwb25zZV9tZXRhZGF0YYCkdHlwZaZzeXN0ZW2k
    bmFtZcCiaWTZJDAwMDAwMDAwLTAwMDAtMDAwMC0wMDAwLTAwMDAwMDAwMDAwMLNtb2RlbF92YWxpZGF0ZV9qc29u
    bXNncGFjawCBqG1lc3NhZ2VzkcfpBZS8bGFuZ2NoYWluX2NvcmUubWVzc2FnZXMudG9vbKtUb29sTWVzc2FnZYmn
    Y29udGVudKCxYWRkaXRpb25hbF9rd2FyZ3OAsXJlc3BvbnNlX21ldGFkYXRhgKR0eXBlpHRvb2ykbmFtZaZzZWFy
    Y2iiaWTZJDAwMDAwMDAwLTAwMDAtMDAwMC0wMDAwLTAwMDAwMDAwMDAwMKx0b29sX2NhbGxfaWS1Y2FsbF8wMDAw
    MDAwMDAwMDAwMDAwqGFydGlmYWN0wKZzdGF0dXOnc3VjY2Vzc7Ntb2RlbF92YWxpZGF0ZV9qc29ubXNncGFjawCR
    yAF3BZS6bGFuZ2NoYWluX2NvcmUubWVzc2FnZXMuYWmpQUlNZXNzYWdliadjb250ZW50oLFhZGRpdGlvbmFsX2t3
    YXJnc4CxcmVzcG9uc2VfbWV0YWRhdGGCqm1vZGVsX25hbWWlbW9kZWytZmluaXNoX3JlYXNvbqp0b29sX2NhbGxz
    pHR5cGWiYWmkbmFtZcCiaWTZLmxjX3J1bi0tMDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAwLTCq
    dG9vbF9jYWxsc5GEpG5hbWWmc2VhcmNopGFyZ3OBpXRvcGljpXRvcGljomlktWNhbGxfMDAwMDAwMDAwMDAwMDAw
    MKR0eXBlqXRvb2xfY2FsbLJpbnZhbGlkX3Rvb2xfY2FsbHOQrnVzYWdlX21ldGFkYXRhg6xpbnB1dF90b2tlbnMB
    rW91dHB1dF90b2tlbnMBrHRvdGFsX3Rva2VucwGzbW9kZWxfdmFsaWRhdGVfanNvbm1zZ3BhY2sAkcdkAZOvbGFu
    Z2dyYXBoLnR5cGVzpFNlbmSSpXRvb2xzhKRuYW1lpnNlYXJjaKRhcmdzgaV0b3BpY6V0b3BpY6JpZLVjYWxsXzAw
    MDAwMDAwMDAwMDAwMDCkdHlwZal0b29sX2NhbGxtc2dwYWNrAJHHngGTr2xhbmdncmFwaC50eXBlc6RTZW5kkqV0
    b29sc4OmX190eXBltnRvb2xfY2FsbF93aXRoX2NvbnRleHSpdG9vbF9jYWxshKRuYW1lpnNlYXJjaKRhcmdzgaV0
    b3BpY6V0b3BpY6JpZLVjYWxsXzAwMDAwMDAwMDAwMDAwMDCkdHlwZal0b29sX2NhbGylc3RhdGWBqG1lc3NhZ2Vz
    kG1zZ3BhY2sAkG51bGwAbXNncGFjawCBqG1lc3NhZ2VzkceqBZS9bGFuZ2NoYWluX2NvcmUubWVzc2FnZXMuaHVt
    YW6sSHVtYW5NZXNzYWdlhqdjb250ZW50oLFhZGRpdGlvbmFsX2t3YXJnc4CxcmVzcG9uc2VfbWV0YWRhdGGApHR5
    cGWlaHVtYW6kbmFtZcCiaWTZJDAwMDAwMDAwLTAwMDAtMDAwMC0wMDAwLTAwMDAwMDAwMDAwMLNtb2RlbF92YWxp
    ZGF0ZV9qc29ubXNncGFjawCEoXYEonRz2SAyMDI2LTAxLTAxVDAwOjAwOjAwLjAwMDAwMCswMDowMK12ZXJzaW9u
    c19zZWVuhKlfX2lucHV0X1+AqV9fc3RhcnRfX4GpX19zdGFydF9ftzAwMDAwMDAwMDAwMS4wMDAwMDAwMDAwpW1v
    ZGVsga9icmFuY2g6dG86bW9kZWy3MDAwMDAwMDAwMDAxLjAwMDAwMDAwMDCldG9vbHOBr2JyYW5jaDp0bzp0b29s
    c7cwMDAwMDAwMDAwMDEuMDAwMDAwMDAwMLB1cGRhdGVkX2NoYW5uZWxzlKlfX3N0YXJ0X1+vYnJhbmNoOnRvOm1v
    ZGVsrl9fcHJlZ2VsX3Rhc2tzqG1lc3NhZ2VzbXNncGFjawCEpnNvdXJjZaVpbnB1dKRzdGVw/6dwYXJlbnRzgK5s
    c19pbnRlZ3JhdGlvbrZsYW5nY2hhaW5fY3JlYXRlX2FnZW50bXNncGFjawCEpnNvdXJjZaRsb29wpHN0ZXABp3Bh
    cmVudHOArmxzX2ludGVncmF0aW9utmxhbmdjaGFpbl9jcmVhdGVfYWdlbnRtc2dwYWNrAIShdgSidHPZIDIwMjYt
    MDEtMDFUMDA6MDA6MDAuMDAwMDAwKzAwOjAwrXZlcnNpb25zX3NlZW6EqV9faW5wdXRfX4CpX19zdGFydF9fgalf
    X3N0YXJ0X1+3MDAwMDAwMDAwMDAxLjAwMDAwMDAwMDClbW9kZWyBr2JyYW5jaDp0bzptb2RlbLcwMDAwMDAwMDAw
    MDEuMDAwMDAwMDAwMKV0b29sc4CwdXBkYXRlZF9jaGFubmVsc5KvYnJhbmNoOnRvOm1vZGVsqG1lc3NhZ2Vz
    """
)
#: sha1 of the dictionary's bytes, checked by the tests (the bytes must never change).
DICTIONARY_1_SHA1 = "8967a10edcd9bcaf4771b1e23e15d8365583cc6c"


def deflate(data: bytes) -> bytes:
    """Raw deflate of ``data`` primed with the dictionary (no header, no checksum)."""
    packer = zlib.compressobj(6, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, _DICTIONARY_1)
    return packer.compress(data) + packer.flush()


def inflate(data: bytes) -> bytes:
    unpacker = zlib.decompressobj(-15, _DICTIONARY_1)
    return unpacker.decompress(data) + unpacker.flush()


def dictionary() -> bytes:
    return _DICTIONARY_1

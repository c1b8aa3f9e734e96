"""``faust``, answered by detstream (the detstream-faust-alias distribution).

This package only hands itself over: ``import faust`` and every ``faust.*``
module a project imports resolve to detstream's objects through
``detstream.faust_compat`` (what is provided, and what is not, is listed
there and in detstream's docs/faust-differences.md). The module
``_detstream_alias`` marks this package as the alias, so that detstream's
``--faust-compat`` does not take it for a real faust.
"""

from detstream.faust_compat import adopt_alias_package

adopt_alias_package(__name__)

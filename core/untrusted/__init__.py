"""What a browser sends, made safe: names and paths, markup, HTTP to named servers, allow-lists, the
parser child, caps."""

package bolt

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/trellis-project/trellis/internal/store"
)

// On-disk layout (format version 1), one bbolt file:
//
//	meta     "format"    -> "1"
//	         "rev"       -> be64 newest committed revision
//	         "compacted" -> be64 newest compacted revision
//	history  key 0x00 be64(rev) -> record   every retained version of every key
//	log      be64(rev)           -> key      which key each revision touched
//
// A record is one flag byte (recTombstone for a deletion), the create
// revision as a uvarint, then the value. Keys never contain NUL, so all
// versions of one key sort together, oldest first, and key+0x01 sorts after
// every version of key.
var (
	bucketMeta    = []byte("meta")
	bucketHistory = []byte("history")
	bucketLog     = []byte("log")

	metaFormat    = []byte("format")
	metaRev       = []byte("rev")
	metaCompacted = []byte("compacted")

	formatVersion = []byte("1")
)

const recTombstone = 1

type record struct {
	tombstone bool
	createRev int64
	value     []byte
}

func be64(v int64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	return b[:]
}

func readBE64(b []byte) int64 {
	if len(b) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(b))
}

func historyKey(key string, rev int64) []byte {
	hk := make([]byte, 0, len(key)+9)
	hk = append(hk, key...)
	hk = append(hk, 0)
	return append(hk, be64(rev)...)
}

// versionsEnd is the first history key after every version of key.
func versionsEnd(key string) []byte {
	return append([]byte(key), 1)
}

func splitHistoryKey(hk []byte) (key string, rev int64, err error) {
	i := bytes.IndexByte(hk, 0)
	if i < 0 || len(hk)-i-1 != 8 {
		return "", 0, fmt.Errorf("malformed history key %q", hk)
	}
	return string(hk[:i]), readBE64(hk[i+1:]), nil
}

func encodeRecord(r record) []byte {
	buf := make([]byte, 1, 1+binary.MaxVarintLen64+len(r.value))
	if r.tombstone {
		buf[0] = recTombstone
	}
	buf = binary.AppendUvarint(buf, uint64(r.createRev))
	return append(buf, r.value...)
}

// decodeRecord copies the value out of bbolt's memory map, which is only
// valid inside the transaction.
func decodeRecord(b []byte) (record, error) {
	if len(b) < 2 {
		return record{}, fmt.Errorf("malformed record of %d bytes", len(b))
	}
	cr, n := binary.Uvarint(b[1:])
	if n <= 0 {
		return record{}, fmt.Errorf("malformed record create revision")
	}
	return record{
		tombstone: b[0]&recTombstone != 0,
		createRev: int64(cr),
		value:     bytes.Clone(b[1+n:]),
	}, nil
}

func (r record) kv(key string, modRev int64) store.KV {
	return store.KV{Key: key, Value: r.value, CreateRevision: r.createRev, ModRevision: modRev}
}

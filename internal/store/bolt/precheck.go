package bolt

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// bbolt maps the whole file and trusts its meta page: a file cut short
// (a copy interrupted, a full disk) faults with SIGBUS on the first read
// of a missing page, which no recover can catch. checkFileSize reads the
// meta pages first and refuses a file shorter than the pages they claim.
const (
	boltMagic       = 0xED0CDAED
	boltMetaOffset  = 16 // after the page header
	boltPgidOffset  = boltMetaOffset + 4 + 4 + 4 + 4 + 16 + 8
	boltTxidOffset  = boltPgidOffset + 8
	boltMinPageSize = 512
)

func checkFileSize(path string) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		return nil // bbolt initialises an empty file
	}
	var first [boltTxidOffset + 8]byte
	if _, err := io.ReadFull(f, first[:]); err != nil {
		return fmt.Errorf("data file %s is truncated (%d bytes): no meta page", path, fi.Size())
	}
	pageSize := int64(binary.LittleEndian.Uint32(first[boltMetaOffset+8:]))
	if binary.LittleEndian.Uint32(first[boltMetaOffset:]) != boltMagic || pageSize < boltMinPageSize {
		return fmt.Errorf("data file %s is corrupt or not a Trellis data file (bad meta page)", path)
	}
	var need int64
	for _, off := range []int64{0, pageSize} {
		var meta [boltTxidOffset + 8]byte
		if _, err := f.ReadAt(meta[:], off); err != nil {
			continue
		}
		if binary.LittleEndian.Uint32(meta[boltMetaOffset:]) != boltMagic {
			continue
		}
		pages := int64(binary.LittleEndian.Uint64(meta[boltPgidOffset:]))
		need = max(need, pages*pageSize)
	}
	if fi.Size() < need {
		return fmt.Errorf("data file %s is truncated: %d bytes, its meta page needs %d", path, fi.Size(), need)
	}
	return nil
}

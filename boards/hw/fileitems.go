package hw

// FileItemBoard is the optional capability of a Board that takes the file
// items of a package (configuration files, metrology parameters,
// certificates): the directory they are written to, on a file system that
// survives power loss and every system set (the common data partition),
// and the largest item it takes (0: the installer's default, 1 MiB). The
// item's id in the manifest is its file name there.
type FileItemBoard interface {
	FileItems() (dir string, maxSize int64)
}

// SPDX-License-Identifier: Apache-2.0
/**
 * A minimal ISO 9660 image for cloud-init's NoCloud datasource: volume label `cidata`, files
 * `user-data` and `meta-data` in the root directory. Two directory trees share the file data: the
 * primary one (names `USER-DATA.;1`, which Linux's default `map=normal` lowercases) and a Joliet one
 * with the exact lowercase names, which Linux and libarchive prefer when present. Proxmox attaches
 * the image as a CD-ROM.
 */

const SECTOR = 2048;
/** Sectors 0–15 are the system area; volume descriptors start at 16. */
const PVD_SECTOR = 16;
const SVD_SECTOR = 17;
const TERMINATOR_SECTOR = 18;
const PRIMARY = { lPath: 19, mPath: 20, root: 23 };
const JOLIET = { lPath: 21, mPath: 22, root: 24 };
const FIRST_FILE_SECTOR = 25;
/**
 * Zero sectors after the data, as genisoimage's default `-pad`: Linux read-ahead past a tiny image's
 * end fails, and readers such as libarchive need more than 24 sectors to recognise an image.
 */
const PAD_SECTORS = 150;

/** Contents of a NoCloud seed image. */
export interface NoCloudSeed {
  userData: string;
  metaData: string;
  /** Timestamps in the image; defaults to now. */
  now?: Date;
}

function both16(buf: Buffer, at: number, v: number): void {
  buf.writeUInt16LE(v, at);
  buf.writeUInt16BE(v, at + 2);
}

function both32(buf: Buffer, at: number, v: number): void {
  buf.writeUInt32LE(v, at);
  buf.writeUInt32BE(v, at + 4);
}

/** UCS-2 big-endian, as Joliet stores names. */
function ucs2(text: string): Buffer {
  const le = Buffer.from(text, "utf16le");
  const be = Buffer.alloc(le.length);
  for (let i = 0; i < le.length; i += 2) {
    be[i] = le[i + 1]!;
    be[i + 1] = le[i]!;
  }
  return be;
}

/** A fixed-width identifier field, space padded (ASCII or UCS-2 spaces). */
function field(text: string, len: number, joliet: boolean): Buffer {
  const out = joliet ? ucs2(" ".repeat(len / 2)) : Buffer.alloc(len, 0x20);
  (joliet ? ucs2(text) : Buffer.from(text, "ascii")).copy(out, 0, 0, len);
  return out;
}

/** 7-byte directory record date (GMT). */
function recordDate(d: Date): Buffer {
  return Buffer.from([
    d.getUTCFullYear() - 1900,
    d.getUTCMonth() + 1,
    d.getUTCDate(),
    d.getUTCHours(),
    d.getUTCMinutes(),
    d.getUTCSeconds(),
    0,
  ]);
}

/** 17-byte volume descriptor date: `YYYYMMDDHHMMSScc` + GMT offset. */
function volumeDate(d: Date): Buffer {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  const text = `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}00`;
  return Buffer.concat([Buffer.from(text, "ascii"), Buffer.from([0])]);
}

function dirRecord(id: Buffer, extent: number, size: number, isDir: boolean, date: Date): Buffer {
  const len = 33 + id.length + (id.length % 2 === 0 ? 1 : 0);
  const r = Buffer.alloc(len);
  r[0] = len;
  both32(r, 2, extent);
  both32(r, 10, size);
  recordDate(date).copy(r, 18);
  r[25] = isDir ? 2 : 0;
  both16(r, 28, 1);
  r[32] = id.length;
  id.copy(r, 33);
  return r;
}

interface Placed {
  primaryName: string;
  jolietName: string;
  data: Buffer;
  extent: number;
}

/** Builds the image. */
export function buildNoCloudIso(seed: NoCloudSeed): Buffer {
  const now = seed.now ?? new Date();
  // Sorted by identifier in both trees, as ISO 9660 requires.
  const files = [
    {
      primaryName: "META-DATA.;1",
      jolietName: "meta-data",
      data: Buffer.from(seed.metaData, "utf8"),
    },
    {
      primaryName: "USER-DATA.;1",
      jolietName: "user-data",
      data: Buffer.from(seed.userData, "utf8"),
    },
  ];
  let next = FIRST_FILE_SECTOR;
  const placed: Placed[] = files.map((f) => {
    const extent = next;
    next += Math.max(1, Math.ceil(f.data.length / SECTOR));
    return { ...f, extent };
  });
  const totalSectors = next + PAD_SECTORS;
  const iso = Buffer.alloc(totalSectors * SECTOR);

  writeVolume(iso, PVD_SECTOR, false, PRIMARY, placed, totalSectors, now);
  writeVolume(iso, SVD_SECTOR, true, JOLIET, placed, totalSectors, now);
  const term = iso.subarray(TERMINATOR_SECTOR * SECTOR);
  term[0] = 255;
  term.write("CD001", 1, "ascii");
  term[6] = 1;
  for (const f of placed) f.data.copy(iso, f.extent * SECTOR);
  return iso;
}

/** One volume descriptor (primary or Joliet) with its path tables and root directory. */
function writeVolume(
  iso: Buffer,
  sector: number,
  joliet: boolean,
  at: { lPath: number; mPath: number; root: number },
  files: Placed[],
  totalSectors: number,
  now: Date,
): void {
  const root = (id: number) => dirRecord(Buffer.from([id]), at.root, SECTOR, true, now);
  const vd = iso.subarray(sector * SECTOR, (sector + 1) * SECTOR);
  vd[0] = joliet ? 2 : 1;
  vd.write("CD001", 1, "ascii");
  vd[6] = 1;
  field("LINUX", 32, joliet).copy(vd, 8);
  // Lowercase like genisoimage's `-volid cidata`; cloud-init looks for both cases.
  field("cidata", 32, joliet).copy(vd, 40);
  both32(vd, 80, totalSectors);
  // UCS-2 level 3 escape sequence marks the Joliet descriptor.
  if (joliet) vd.write("%/E", 88, "ascii");
  both16(vd, 120, 1);
  both16(vd, 124, 1);
  both16(vd, 128, SECTOR);
  both32(vd, 132, 10);
  vd.writeUInt32LE(at.lPath, 140);
  vd.writeUInt32BE(at.mPath, 148);
  root(0).copy(vd, 156);
  field("", 128, joliet).copy(vd, 190);
  field("", 128, joliet).copy(vd, 318);
  field("", 128, joliet).copy(vd, 446);
  field("NSTANCE", 128, joliet).copy(vd, 574);
  field("", 36, joliet).copy(vd, 702);
  field("", 36, joliet).copy(vd, 739);
  field("", 36, joliet).copy(vd, 776);
  volumeDate(now).copy(vd, 813);
  volumeDate(now).copy(vd, 830);
  Buffer.concat([Buffer.from("0000000000000000", "ascii"), Buffer.from([0])]).copy(vd, 847);
  volumeDate(now).copy(vd, 864);
  vd[881] = 1;

  // Path tables: the root directory only (10 bytes each).
  const lPath = iso.subarray(at.lPath * SECTOR);
  lPath[0] = 1;
  lPath.writeUInt32LE(at.root, 2);
  lPath.writeUInt16LE(1, 6);
  const mPath = iso.subarray(at.mPath * SECTOR);
  mPath[0] = 1;
  mPath.writeUInt32BE(at.root, 2);
  mPath.writeUInt16BE(1, 6);

  // Root directory: ".", "..", then the files.
  let pos = at.root * SECTOR;
  const records = [
    root(0),
    root(1),
    ...files.map((f) =>
      dirRecord(
        joliet ? ucs2(f.jolietName) : Buffer.from(f.primaryName, "ascii"),
        f.extent,
        f.data.length,
        false,
        now,
      ),
    ),
  ];
  for (const rec of records) {
    rec.copy(iso, pos);
    pos += rec.length;
  }
}

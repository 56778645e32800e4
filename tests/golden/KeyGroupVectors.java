import java.util.Arrays;

/**
 * Prints key-group vectors computed the way Flink does (Arrays.hashCode, MathUtils.murmurHash,
 * KeyGroupRangeAssignment), for tests/keyed.rs. Run: javac KeyGroupVectors.java && java KeyGroupVectors
 */
public class KeyGroupVectors {
    static int mix(int h) {
        h ^= h >>> 16; h *= 0x85ebca6b; h ^= h >>> 13; h *= 0xc2b2ae35; h ^= h >>> 16;
        return h;
    }
    static int murmur(int code) {
        code *= 0xcc9e2d51;
        code = Integer.rotateLeft(code, 15);
        code *= 0x1b873593;
        code = Integer.rotateLeft(code, 13);
        code = code * 5 + 0xe6546b64;
        code ^= 4;
        code = mix(code);
        if (code >= 0) return code;
        return code == Integer.MIN_VALUE ? 0 : -code;
    }
    public static void main(String[] a) {
        byte[][] keys = {
            {}, {0}, {1}, {(byte) 0xff}, "page-7".getBytes(), "device-123456".getBytes(),
            {0, 0, 0, 42}, {(byte) 0x80, 0, 0, 0, 0, 0, 0, 1}, "hello world".getBytes(),
        };
        for (byte[] k : keys) {
            int h = Arrays.hashCode(k);
            int m = murmur(h);
            System.out.printf("(&%s, %d, %d, %d, %d),%n", Arrays.toString(k).replace(" ", ""), h, m, m % 128, m % 32768);
        }
        int[][] ranges = {{128, 3, 0}, {128, 3, 1}, {128, 3, 2}, {32768, 7, 6}, {10, 4, 3}};
        for (int[] r : ranges) {
            int maxP = r[0], p = r[1], i = r[2];
            int start = (i * maxP + p - 1) / p;
            int end = ((i + 1) * maxP - 1) / p;
            System.out.printf("((%d, %d, %d), (%d, %d)),%n", maxP, p, i, start, end);
        }
    }
}
